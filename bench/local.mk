# bench rules (owned by the bench area)
