"""Mean-field equilibria and the miscidynamic path along them (physics.md section 7)."""
