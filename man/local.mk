# man rules (owned by the man area)
