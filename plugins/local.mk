# plugins rules (owned by the plugins area)
