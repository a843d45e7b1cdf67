# systemd rules (owned by the systemd area)
#
# crund.service names the installed daemon, so it is generated from
# crund.service.in with the configured paths (sed, not config.status: the
# paths must be fully expanded, and `make sbindir=...` must work).
# sysusers.d and tmpfiles.d read only *.conf files: the snippets are copied
# under their installed name into the build tree and installed from there,
# which avoids install-data-local hooks shared with other areas.

nodist_systemdsystemunit_DATA = systemd/crund.service
dist_systemdsystemunit_DATA = systemd/crund.socket
nodist_sysusers_DATA = systemd/sysusers/crund.conf
nodist_tmpfiles_DATA = systemd/tmpfiles/crund.conf
# The configuration file crund.service names, every key commented out
# (built-in defaults), with the configured paths filled in.
crundconfdir = $(sysconfdir)/crund
nodist_crundconf_DATA = systemd/etc/crund.conf

EXTRA_DIST += systemd/crund.service.in systemd/crund.sysusers systemd/crund.tmpfiles \
	systemd/crund.conf.example
CLEANFILES += systemd/crund.service systemd/sysusers/crund.conf systemd/tmpfiles/crund.conf \
	systemd/etc/crund.conf

systemd_subst = sed \
	-e 's|@sbindir[@]|$(sbindir)|g' \
	-e 's|@sysconfdir[@]|$(sysconfdir)|g' \
	-e 's|@pkglibdir[@]|$(pkglibdir)|g'

systemd/crund.service: $(srcdir)/systemd/crund.service.in Makefile
	$(AM_V_GEN)$(MKDIR_P) $(@D) && \
	$(systemd_subst) $(srcdir)/systemd/crund.service.in > $@.tmp && mv $@.tmp $@

systemd/etc/crund.conf: $(srcdir)/systemd/crund.conf.example Makefile
	$(AM_V_GEN)$(MKDIR_P) $(@D) && \
	$(systemd_subst) $(srcdir)/systemd/crund.conf.example > $@.tmp && mv $@.tmp $@

systemd/sysusers/crund.conf: $(srcdir)/systemd/crund.sysusers
	$(AM_V_GEN)$(MKDIR_P) $(@D) && cp $(srcdir)/systemd/crund.sysusers $@

systemd/tmpfiles/crund.conf: $(srcdir)/systemd/crund.tmpfiles
	$(AM_V_GEN)$(MKDIR_P) $(@D) && cp $(srcdir)/systemd/crund.tmpfiles $@

# The unit directory comes from pkg-config (an absolute path outside the
# prefix); distcheck installs as a user into a scratch prefix, so point it
# there.
# ($$dc_install_base is the shell variable of automake's distcheck recipe.)
AM_DISTCHECK_CONFIGURE_FLAGS = \
	--with-systemdsystemunitdir="$$dc_install_base/lib/systemd/system"
