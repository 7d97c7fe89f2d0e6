"""The same module and function names as ``course_lib.numpy_impl``, built on PyTorch.

Code here follows torch's own idioms (``nn.Module``, tensors, ``device=``) and runs on CUDA
when a GPU is there. The tests hold it to the NumPy reference.
"""
