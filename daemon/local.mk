# daemon rules (owned by the daemon area)
