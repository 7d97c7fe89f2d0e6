"""nbgrader configuration of the course (nbgrader 0.9).

solutions/<assignment>/<assignment>.ipynb are the instructor's *source* notebooks (solutions and
hidden tests); ``nbgrader generate_assignment`` writes the student versions to
exercises/<assignment>/. Grading (submitted/, autograded/, feedback/, gradebook.db) never
happens inside this repository: ``course grade`` builds its own workspace elsewhere.
"""

c = get_config()  # noqa: F821 - provided by traitlets when nbgrader loads this file

c.CourseDirectory.course_id = "training-deep-networks-well"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"
# solutions/<assignment>/judge.py holds the hidden tests (course_lib.grading.judge): never released.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", "judge.py"]
c.CourseDirectory.root = "."
# Never a gradebook in the repository: generating exercises does not need one.
c.GenerateAssignment.no_database = True
c.SaveCells.enabled = False
# Student notebooks are committed without outputs.
c.ClearOutput.enabled = True
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ExecutePreprocessor.timeout = 60
