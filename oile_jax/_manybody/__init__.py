"""The exact many-body reference (physics.md section 9)."""
