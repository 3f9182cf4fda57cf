"""Support shared by every part: argument checks, the compilation cache and stored programs,
memory and disk figures, the progress bar, device placement."""
