"""course_lib: the shared code of the course *Training Deep Networks Well*.

``course_lib.numpy_impl`` holds from-scratch NumPy implementations and
``course_lib.torch_impl`` the same names built on PyTorch. ``data``, ``training``,
``gradcheck`` and ``plotting`` are shared by both. Importing this package is cheap:
PyTorch is imported only when ``course_lib.torch_impl`` is.
"""

__version__ = "0.1.0"
