# man rules (owned by the man area)
dist_man_MANS += man/crund-plugin.7
dist_man_MANS += man/crund.8
dist_man_MANS += man/crunctl.1
