# client rules (owned by the client area)
