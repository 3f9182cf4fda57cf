"""Mean-field vector fields, their solver and their linear stability
(physics.md sections 5, 6 and 10)."""
