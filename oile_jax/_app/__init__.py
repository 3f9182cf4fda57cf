"""The application: the `oile` command line, run files, presets and the datasets they write."""
