"""The foreground model and its closed forms (physics.md sections 5 and 8)."""
