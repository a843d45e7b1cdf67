# The dashboard in a real headless Chromium (tests/ui/browser.test runs
# tests/ui/browser.py with Selenium against a real crund).  Not a TAP
# script: automake's plain driver, so exit 77 is a SKIP where Chromium
# cannot be installed or run.  Screenshots go to tests/artifacts/.
UI_TESTS += tests/ui/browser.test
EXTRA_DIST += tests/ui/browser.test tests/ui/browser.py
