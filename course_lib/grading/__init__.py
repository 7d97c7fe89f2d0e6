"""Grading tools: the ``course`` command line, the judge, the sandbox and nbgrader workspaces.

- ``judge``: every graded part decided outside the student's kernel; the hidden tests of an
  assignment live in ``solutions/<assignment>/judge.py``, never in a notebook or a kernel.
- ``probe``: the only grading code that runs in a kernel, and the plain-data codec both sides use.
- ``integrity``: the static check, on the trusted side, that an answer does not delegate to
  ``course_lib``, torch, scipy or scikit-learn.
- ``kernel_env``: what a grading kernel can import (no torch, scipy, scikit-learn; a grading copy of
  ``course_lib`` without what the assignment asks students to write).
- ``sandbox``: the kernel launcher (chroot in namespaces with no network, unprivileged user,
  limits, a disk quota).
- ``execute``: nbgrader's Execute preprocessor, surviving dead and stuck kernels and huge outputs,
  and ``JudgedExecute``, in which the judge decides the test cells.
- ``worker``: one grading worker process (nbgrader's Autograde in-process, feedback).
- ``batch``: ``course grade``, a class in parallel workers, each student in an nbgrader course
  of their own; the statuses, grades.csv, notes.csv, summary.md/png, the class gradebook.
- ``submissions``: collecting submissions (folders, zip, LMS files), reading and repairing them.
- ``sanitize``: feedback HTML without scripts (nh3, a CSP); escaped Markdown and CSV cells.
- ``redact``: feedback and returned notebooks without hidden-test or judge code.
- ``workspace``: nbgrader courses for grading, outside the repository.
- ``release``: regenerate exercises/ from solutions/ and verify, with ``course grade``, that the
  solution scores full marks and the released notebook zero.
- ``check``: ``course check``, the student's self-check.
- ``cli``: ``course release``, ``course grade``, ``course check``.

Importing this package is cheap: nbgrader is imported only by the modules that need it.
"""

import sys

# nbformat validates with jsonschema, which imports ``rfc3987_syntax`` when it is installed (it
# comes with jupyter's format extras) only to check the "iri" string format, which no notebook
# schema uses. That import compiles a grammar: about 2 s of CPU in every process that reads a
# notebook (the ``course grade`` orchestrator, each worker, ``course check``). Without it,
# jsonschema leaves "iri" unchecked and everything else as it was.
sys.modules.setdefault("rfc3987_syntax", None)
