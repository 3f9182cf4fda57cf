"""Output: HDF5 files and figures."""
