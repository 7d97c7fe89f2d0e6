"""Grading tools: the ``course`` command line, nbgrader workspaces and answer-integrity checks.

- ``integrity``: ``assert_from_scratch(fn)`` fails when a student's function delegates to
  ``course_lib``'s reference code or to torch/scipy/sklearn; hidden tests call it.
- ``workspace``: a throw-away nbgrader course (gradebook included) outside the repository,
  submissions in it, ``nbgrader autograde`` and the per-cell scores read back as plain data.
- ``release``: regenerate exercises/ from solutions/ and verify that the solution scores full
  marks and the released notebook zero; compare a release with a regenerated one.
- ``batch``: ``course grade``, a class in parallel workers, each student in an nbgrader course
  of their own; the statuses, grades.csv, notes.csv, summary.md/png, the class gradebook.
- ``worker``: one grading worker process (nbgrader's Autograde in-process, feedback).
- ``sandbox``: the kernel launcher (chroot in namespaces, unprivileged user, limits).
- ``execute``: nbgrader's Execute preprocessor, surviving dead and stuck kernels, huge outputs.
- ``submissions``: collecting submissions (folders, zip, LMS files), reading and repairing them.
- ``redact``: feedback and returned notebooks without hidden tests.
- ``check``: ``course check``, the student's self-check.
- ``cli``: ``course release``, ``course grade``, ``course check``.

Importing this package is cheap: nbgrader is imported only by the modules that need it, so
hidden test cells can ``from course_lib.grading.integrity import assert_from_scratch``.
"""

import sys

# nbformat validates with jsonschema, which imports ``rfc3987_syntax`` when it is installed (it
# comes with jupyter's format extras) only to check the "iri" string format, which no notebook
# schema uses. That import compiles a grammar: about 2 s of CPU in every process that reads a
# notebook (the ``course grade`` orchestrator, each worker, ``course check``). Without it,
# jsonschema leaves "iri" unchecked and everything else as it was.
sys.modules.setdefault("rfc3987_syntax", None)
