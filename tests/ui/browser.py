#!/usr/bin/python3
"""tests/ui/browser.py — the dashboard in a real headless Chromium.

Driven by Selenium (Debian's python3-selenium and chromium-driver) against
a real crund started from the build tree: the overview loads; a job
submitted through the plugin form goes live to `succeeded`; a job submitted
elsewhere appears in the jobs table and changes state there without a
reload (GET /v1/events); a cancel from the job page ends a `linger` job
`cancelled`, and "Run again" makes a new job linked by retry_of; the log
of a `progress` job follows while it runs; the pages fit a phone's width
and are reachable with the keyboard; the token form works with auth on.
Live, over more than a page of jobs: the table keeps the list's order (a
delayed job that starts is not put on top) and "Older →" after new rows
shows every job once; through a relay whose connections the test cuts, the
live badge says live again at once and a job's page follows on; a job's
page follows its job across a restart of crund with a durable store.
The browser's console must stay free of errors (a Content-Security-Policy
violation would show there).  Screenshots of each page go to
$top_builddir/tests/artifacts/.

Run by tests/ui/browser.test, which skips (exit 77) where Chromium,
chromedriver or Selenium are missing; this script exits 77 itself when
Chromium is installed but cannot start.  Bounds are generous and never
decide a pass on speed.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import (StaleElementReferenceException, TimeoutException,
                                        WebDriverException)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BUILD = os.environ.get("top_builddir") or os.getcwd()
ARTIFACTS = os.path.join(BUILD, "tests", "artifacts")
BOUND = 20  # seconds any one wait may take (a bound, not a measurement)

failures = []
checks = 0


def check(cond, what):
    global checks
    checks += 1
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Crund:
    """A crund from the build tree on a free loopback port."""

    def __init__(self, tmp, name, token=None, store="memory:", port=None):
        self.token = token
        self.store = store
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [os.path.join(BUILD, "daemon", "crund"), "--listen", f"127.0.0.1:{self.port}",
                "--plugin-dir", os.path.join(BUILD, "plugins", ".libs"), "--store", store,
                "--grace", "1"]
        if token:
            tf = os.path.join(tmp, name + ".token")
            with open(tf, "w") as f:
                f.write(token + "\n")
            os.chmod(tf, 0o600)
            args += ["--token-file", tf]
        self.log = open(os.path.join(tmp, name + ".log"), "w")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + BOUND
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"crund did not start (see {self.log.name})")

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if self.token:
            req.add_header("Authorization", "Bearer " + self.token)
        with urllib.request.urlopen(req, timeout=BOUND) as r:
            text = r.read()
            return json.loads(text) if text else None

    def stop(self):
        self.proc.terminate()
        try:
            rc = self.proc.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "killed"
        self.log.close()
        return rc


class Proxy:
    """A TCP relay in front of a crund whose connections the test can cut:
    a network blip, where the page's streams break and crund stays up."""

    def __init__(self, crund):
        self.upstream = crund.port
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.conns = []
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return  # closed
            try:
                u = socket.create_connection(("127.0.0.1", self.upstream), timeout=BOUND)
                u.settimeout(None)
            except OSError:
                c.close()
                continue
            with self.lock:
                self.conns += [c, u]
            for a, b in ((c, u), (u, c)):
                threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                data = a.recv(65536)
                if not data:
                    break
                b.sendall(data)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        """Break every connection open now."""
        with self.lock:
            conns, self.conns = self.conns, []
        for x in conns:
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            x.close()

    def close(self):
        self.srv.close()
        self.cut()


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--no-first-run", "--disable-extensions"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)


def console_errors(d):
    try:
        return [e["message"] for e in d.get_log("browser") if e.get("level") == "SEVERE"]
    except WebDriverException:
        return []


def wait(d, cond, what):
    try:
        # the page re-renders live (events): an element found in one poll
        # may be replaced before the next look at it; look again
        return WebDriverWait(d, BOUND, poll_frequency=0.1,
                             ignored_exceptions=[StaleElementReferenceException]).until(cond)
    except TimeoutException:
        check(False, what + " (timed out)")
        return None


def click_fresh(d, locator):
    """Click what locator finds now (found again if a live re-render
    replaced it in between)."""
    for _ in range(50):
        try:
            d.find_element(*locator).click()
            return True
        except StaleElementReferenceException:
            time.sleep(0.05)
    return False


def text_is(locator, text):
    def f(d):
        try:
            return d.find_element(*locator).text.strip() == text
        except WebDriverException:
            return False
    return f


def shot(d, name):
    path = os.path.join(ARTIFACTS, name)
    d.save_screenshot(path)
    print(f"     screenshot {path}", flush=True)


def fresh(read, tries=20):
    # The job page re-renders on live events (a progress job's every step):
    # an element found a moment before may be gone (stale) when it is read,
    # so a read is tried again, a few times.  None when it never succeeds.
    for _ in range(tries):
        try:
            return read()
        except WebDriverException:
            time.sleep(0.05)
    return None


def job_state_on_page(d):
    return fresh(lambda: d.find_element(By.CSS_SELECTOR, "h1 .badge").text.strip())


def table_ids(d):
    """The ids of the jobs table's rows, top to bottom."""
    return d.execute_script(
        "return [...document.querySelectorAll('#jobs-body tr')].map((r) => r.dataset.id)")


# what the browser logs when a request fails while a test has cut its
# connections or stopped crund on purpose
NET_DOWN = ("ERR_INCOMPLETE_CHUNKED_ENCODING", "ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET",
            "ERR_NETWORK_CHANGED", "ERR_EMPTY_RESPONSE", "Failed to fetch")


def main():
    os.makedirs(ARTIFACTS, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="crund-ui.")
    try:
        d = browser()
    except WebDriverException as e:
        print(f"SKIP: Chromium is installed but cannot start here: {e.msg}", flush=True)
        return 77
    crund = auth = live = durable = None
    try:
        crund = Crund(tmp, "open")
        run_open(d, crund)
        errs = console_errors(d)
        check(not errs, "the browser console shows no errors" + (f": {errs[:3]}" if errs else ""))
        live = Crund(tmp, "live")
        run_live(d, live)
        durable = Crund(tmp, "durable", store="sqlite:" + os.path.join(tmp, "durable.db"))
        durable = run_restart(d, tmp, durable)
        # failed requests while the network or crund was down on purpose
        errs = [e for e in console_errors(d) if not any(n in e for n in NET_DOWN)]
        check(not errs, "the browser console shows no other errors while following live" +
              (f": {errs[:3]}" if errs else ""))
        auth = Crund(tmp, "auth", token="s3cret-token-for-the-ui-test")
        run_auth(d, auth)
        # with auth on, the 401s that show the sign-in form are expected
        errs = [e for e in console_errors(d) if "status of 401" not in e]
        check(not errs, "the browser console shows no other errors with auth on" +
              (f": {errs[:3]}" if errs else ""))
    finally:
        d.quit()
        for c in (crund, live, durable, auth):
            if c:
                rc = c.stop()
                check(rc == 0, f"crund exits 0 on SIGTERM (got {rc})")
    print(f"{checks - len(failures)}/{checks} checks passed", flush=True)
    return 1 if failures else 0


def run_open(d, crund):
    base = crund.url + "/ui/"
    # --- overview
    d.get(base)
    ok = wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "#state-counts")),
              "the overview shows the job counts")
    check(ok is not None, "the overview loads")
    wait(d, text_is((By.ID, "daemon-state"), "running"), "the daemon's state is shown")
    check(d.find_element(By.ID, "daemon-state").text == "running", "the header says the daemon is running")
    wait(d, text_is((By.ID, "live"), "live"), "the event stream connects")
    check(d.find_element(By.ID, "live").text == "live", "the page is live (GET /v1/events)")
    charts = d.find_elements(By.CSS_SELECTOR, ".chart svg")
    check(len(charts) == 2, "the overview has its two charts")
    shot(d, "overview.png")

    # --- keyboard: the skip link, then the navigation, reachable with Tab
    body = d.find_element(By.TAG_NAME, "body")
    body.send_keys(Keys.TAB)
    seen = []
    for _ in range(6):
        el = d.switch_to.active_element
        seen.append(el.text)
        if el.text == "Jobs":
            el.send_keys(Keys.ENTER)
            break
        el.send_keys(Keys.TAB)
    wait(d, lambda d: d.current_url.endswith("#/jobs"), "Enter on the Jobs link opens the jobs page")
    check(d.current_url.endswith("#/jobs"), f"the navigation works from the keyboard (tabbed through {seen})")

    # --- a job submitted through the plugin form goes live to succeeded
    d.get(base + "#/plugins?job=sleep")
    form = wait(d, EC.visibility_of_element_located(
        (By.CSS_SELECTOR, 'form[data-plugin="demo"][data-job="sleep"]')), "the sleep job's form is shown")
    shot(d, "plugins.png")
    if form:
        seconds = form.find_element(By.NAME, "seconds")
        check(seconds.get_attribute("type") == "number" and seconds.get_attribute("max") == "3600",
              "the form's field follows the argument spec (a number, at most 3600)")
        seconds.send_keys("1.5")
        form.find_element(By.NAME, "idempotency_key").send_keys("ui-form-1")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(d, lambda d: "#/jobs/" in d.current_url, "the submission opens the job's page")
        job_id = d.current_url.rsplit("/", 1)[1]
        wait(d, lambda d: job_state_on_page(d) == "succeeded", "the submitted job reaches succeeded")
        check(job_state_on_page(d) == "succeeded", f"the job submitted through the form went live to succeeded ({job_id})")
        job = crund.call("GET", f"/v1/jobs/{job_id}")
        check(job["args"] == {"seconds": 1.5} and job.get("idempotency_key") == "ui-form-1",
              "the job has the form's arguments and idempotency key")
        check("1.5" in d.find_element(By.ID, "args").text, "the job page shows the arguments")
        shot(d, "job-succeeded.png")

        # the jobs table lists it; a new job appears there and changes live
        d.get(base + "#/jobs")
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-id="{job_id}"]')),
             "the jobs table lists the submitted job")
        row = d.find_elements(By.CSS_SELECTOR, f'tr[data-id="{job_id}"] .badge')
        check(bool(row) and row[0].text == "succeeded", "the table shows it succeeded")
        d.execute_script("document.getElementById('jobs-body').dataset.mark = 'same'")
        wait(d, text_is((By.ID, "live"), "live"), "the jobs page is live")
        other = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "sleep", "args": {"seconds": 1}})
        sel = f'tr[data-id="{other["id"]}"] .badge'
        wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, sel)),
             "a job submitted by another client appears in the table")
        wait(d, text_is((By.CSS_SELECTOR, sel), "succeeded"), "the new row goes to succeeded")
        check(d.find_element(By.CSS_SELECTOR, sel).text == "succeeded",
              "a job submitted elsewhere appeared and went live to succeeded in the table")
        check(d.execute_script("return document.getElementById('jobs-body').dataset.mark") == "same",
              "... without reloading the table")

    # --- cancel from the job page ends a linger job cancelled
    lj = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "linger",
                                           "args": {"seconds": 300, "cleanup_seconds": 0.3}})
    d.get(base + f"#/jobs/{lj['id']}")
    btn = wait(d, EC.element_to_be_clickable((By.ID, "cancel")), "the cancel button is enabled for a running job")
    check(job_state_on_page(d) == "running", "the linger job is shown running")
    check(d.find_element(By.ID, "retry").get_attribute("disabled") is not None,
          "\"Run again\" is disabled while the job runs")
    if btn:
        check(click_fresh(d, (By.ID, "cancel")), "the cancel button can be clicked")
        wait(d, lambda d: job_state_on_page(d) == "cancelled", "the linger job ends cancelled")
        check(job_state_on_page(d) == "cancelled", "a cancel from the job page ended the linger job cancelled")
        check(crund.call("GET", f"/v1/jobs/{lj['id']}")["state"] == "cancelled", "the API agrees: cancelled")
        wait(d, EC.text_to_be_present_in_element((By.ID, "log"), "cleanup done"), "the log shows the cleanup")
        check("cleanup done" in (fresh(lambda: d.find_element(By.ID, "log").text) or ""),
              "the job page's log shows the cleanup")
        check("cancelled" in (fresh(lambda: d.find_element(By.ID, "error").text) or ""),
              "the error box says why")
        shot(d, "job-cancelled.png")
        # run it again: a new job, linked back
        again = wait(d, EC.element_to_be_clickable((By.ID, "retry")), "\"Run again\" is enabled once ended")
        if again:
            check(click_fresh(d, (By.ID, "retry")), "\"Run again\" can be clicked")
            wait(d, lambda d: "#/jobs/" in d.current_url and not d.current_url.endswith(lj["id"]),
                 "\"Run again\" opens the new job")
            new_id = d.current_url.rsplit("/", 1)[1]
            link = wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, f'a[href="#/jobs/{lj["id"]}"]')),
                        "the new job links to the one it runs again")
            check(link is not None and new_id != lj["id"], "\"Run again\" made a new job linked by retry_of")
            nj = crund.call("GET", f"/v1/jobs/{new_id}")
            check(nj.get("retry_of") == lj["id"] and nj["args"]["seconds"] == 300,
                  "the new job has the same arguments and retry_of")
            crund.call("POST", f"/v1/jobs/{new_id}/cancel")

    # --- the log follows a progress job while it runs
    pj = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "progress",
                                           "args": {"steps": 10000, "interval": 0.2}})
    d.get(base + f"#/jobs/{pj['id']}")
    wait(d, lambda d: job_state_on_page(d) == "running", "the progress job is shown running")

    def lines(d):
        return fresh(lambda: [l for l in d.find_element(By.ID, "log").text.splitlines()
                              if "done" in l]) or []

    wait(d, lambda d: len(lines(d)) >= 2, "log lines arrive")
    first = len(lines(d))
    wait(d, lambda d: len(lines(d)) >= first + 3, "more log lines arrive while the page is open")
    later = len(lines(d))
    still = job_state_on_page(d)
    check(later >= first + 3 and still == "running",
          f"the log follows the running progress job ({first} then {later} lines, {still})")
    prog = fresh(lambda: d.find_element(By.ID, "progress").get_attribute("value"))
    check(prog is not None and float(prog) > 0, f"the progress bar moves (value {prog})")
    shot(d, "job-progress.png")
    crund.call("POST", f"/v1/jobs/{pj['id']}/cancel")
    wait(d, lambda d: job_state_on_page(d) == "cancelled", "the progress job's end reaches the page")

    # --- the jobs table's filters
    d.get(base + "#/jobs?state=cancelled&plugin=demo&job=linger")
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-id="{lj["id"]}"]')),
         "the filtered table lists the cancelled linger job")
    states = {e.text for e in d.find_elements(By.CSS_SELECTOR, "#jobs-body .badge")}
    check(states == {"cancelled"}, f"the state filter shows only cancelled jobs ({states})")
    shot(d, "jobs.png")
    # a job leaves the state the table shows: its row goes, live
    d.get(base + "#/jobs?state=running")
    wait(d, EC.presence_of_element_located((By.ID, "jobs-body")), "the running jobs' table loads")
    wait(d, text_is((By.ID, "live"), "live"), "the running jobs' table is live")
    sj = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "sleep", "args": {"seconds": 3}})
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-id="{sj["id"]}"]')),
         "a new running job appears in the table of running jobs")
    wait(d, lambda d: not d.find_elements(By.CSS_SELECTOR, f'tr[data-id="{sj["id"]}"]'),
         "the job's row leaves the table of running jobs once it succeeded")
    check(not d.find_elements(By.CSS_SELECTOR, f'tr[data-id="{sj["id"]}"]'),
          "a job that is no longer running leaves the table filtered on running")
    d.get(base + f"#/jobs?q={lj['id']}")
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#jobs-body tr")) == 1, "the text filter narrows to one job")
    check(len(d.find_elements(By.CSS_SELECTOR, "#jobs-body tr")) == 1, "the text filter finds the job by its id")

    # --- the charts, once the daemon has ten seconds of samples
    d.get(base)
    wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".chart polyline")) >= 2,
         "the charts draw their lines")
    lines_drawn = len(d.find_elements(By.CSS_SELECTOR, ".chart polyline"))
    check(lines_drawn >= 2, f"the overview's charts show the last minutes ({lines_drawn} lines)")
    legend = d.find_element(By.CSS_SELECTOR, ".chart .legend").text
    check("submitted" in legend and "/s" in legend, f"the throughput chart's legend has rates ({legend})")
    d.execute_script("document.querySelector('.charts').scrollIntoView()")
    shot(d, "overview-charts.png")

    # --- prefers-color-scheme: dark
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",
                      {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    d.get(base + f"#/jobs/{lj['id']}")
    wait(d, lambda d: job_state_on_page(d) == "cancelled", "the job page loads in dark mode")
    bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
    rgb = [int(x) for x in bg[bg.index("(") + 1:bg.index(")")].split(",")[:3]]
    check(sum(rgb) < 150, f"with prefers-color-scheme: dark the page is dark ({bg})")
    shot(d, "job-dark.png")
    d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})

    # --- a phone's width
    d.set_window_size(390, 844)
    for page, name in (("#/", "overview-phone.png"), ("#/jobs", "jobs-phone.png"),
                       (f"#/jobs/{lj['id']}", "job-phone.png")):
        d.get(base + page)
        time.sleep(0.5)  # layout settles; not a pass/fail bound
        width = d.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        check(width[0] <= width[1] + 1, f"{page} fits a phone's width (scroll {width[0]} px, viewport {width[1]} px)")
        shot(d, name)
    d.set_window_size(1280, 900)


def run_live(d, crund):
    """The jobs table, live, over more than one page of jobs; the live
    badge and a job's page when a connection breaks (crund stays up)."""
    base = crund.url + "/ui/"

    def listed(limit):
        return [j["id"] for j in crund.call("GET", f"/v1/jobs?limit={limit}")["jobs"]]

    # --- a job that starts late is not put above newer jobs
    late = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "noop", "delay": 6})
    for _ in range(55):
        crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "noop"})
    d.get(base + "#/jobs")
    wait(d, lambda d: len(table_ids(d)) == 50, "the jobs table shows a page of 50")
    wait(d, text_is((By.ID, "live"), "live"), "the jobs table is live")
    # the table was open before the late job started (else this proves nothing)
    was_queued = crund.call("GET", f"/v1/jobs/{late['id']}")["state"] == "queued"
    deadline = time.monotonic() + BOUND
    while crund.call("GET", f"/v1/jobs/{late['id']}")["state"] != "succeeded" and time.monotonic() < deadline:
        time.sleep(0.2)
    # events come in order: once this job's row is shown, the late job's
    # start and end have reached the page
    mark = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "noop"})
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-id="{mark["id"]}"]')),
         "a new job appears at the top")
    shown, want = table_ids(d), listed(50)
    check(was_queued and late["id"] not in shown,
          "a delayed job that starts while the table is open is not put at its top (it is on the second page)")
    check(shown == want, "the live table keeps GET /v1/jobs's order, newest first"
          + ("" if shown == want else f" (shown {shown[:3]}..., listed {want[:3]}...)"))

    # --- paging after live updates: every job on one page, once
    d.execute_script("document.getElementById('jobs-body').dataset.mark = 'first'")
    new = [crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "noop"})["id"] for _ in range(10)]
    wait(d, lambda d: set(new) <= set(table_ids(d)), "ten new jobs appear in the table")
    wait(d, lambda d: all(b.text == "succeeded" for b in d.find_elements(
        By.CSS_SELECTOR, "#jobs-body .badge")), "the new jobs go to succeeded in the table")
    first = table_ids(d)
    click_fresh(d, (By.ID, "next-page"))
    wait(d, lambda d: "cursor=" in d.current_url and d.execute_script(
        "const b = document.getElementById('jobs-body'); return b && b.dataset.mark !== 'first'"),
        "\"Older →\" opens the next page")
    second = table_ids(d)
    everything = listed(1000)  # 67 jobs
    lost = [i for i in everything if i not in first + second]
    check(first + second == everything,
          f"after live updates the two pages show every one of the {len(everything)} jobs once, newest first"
          + ("" if not lost else f" ({len(lost)} shown on neither page: {lost[:3]}...)"))
    shot(d, "jobs-page2.png")

    proxy = Proxy(crund)
    try:
        run_blip(d, crund, proxy)
    finally:
        proxy.close()


def run_blip(d, crund, proxy):
    """Through a relay whose connections the test cuts: the live badge and
    a job's page connect again."""
    base = proxy.url + "/ui/"
    d.get(base + "#/jobs")
    wait(d, text_is((By.ID, "live"), "live"), "the jobs page is live through the relay")
    # every text the badge takes from now on
    d.execute_script("""const el = document.getElementById('live'); window.liveSeen = [];
        new MutationObserver(() => window.liveSeen.push(el.textContent))
          .observe(el, { childList: true, characterData: true, subtree: true });""")
    proxy.cut()
    wait(d, lambda d: "offline" in d.execute_script("return window.liveSeen"),
         "the badge says offline when the stream breaks")
    wait(d, text_is((By.ID, "live"), "live"), "the badge says live once the stream is back")
    seen = d.execute_script("return window.liveSeen")
    check("offline" in seen and d.find_element(By.ID, "live").text == "live",
          f"the badge says live as soon as the stream reconnects, no job having changed ({seen})")
    lj = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "noop"})
    wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, f'tr[data-id="{lj["id"]}"]')),
         "the reconnected stream carries a new job into the table")

    # a job's stream that just closes (no end): the page follows the job on
    pj = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "progress",
                                           "args": {"steps": 10000, "interval": 0.2}})
    d.get(base + f"#/jobs/{pj['id']}")

    def steps(d):
        text = fresh(lambda: d.find_element(By.ID, "log").text) or ""
        return [int(l.split("step ")[1].split("/")[0]) for l in text.splitlines() if " done" in l]

    wait(d, lambda d: len(steps(d)) >= 2, "the progress job's log lines arrive through the relay")
    proxy.cut()
    time.sleep(0.5)
    cut_at = len(steps(d))
    wait(d, lambda d: len(steps(d)) >= cut_at + 5, "the log goes on after the job's stream broke")
    got = steps(d)
    check(len(got) >= cut_at + 5 and got == list(range(1, len(got) + 1)) and job_state_on_page(d) == "running",
          f"a job's page reconnects when its stream breaks: its log goes on, every line once "
          f"({cut_at} lines, then {len(got)}{'' if got == list(range(1, len(got) + 1)) else ': ' + str(got)})")
    crund.call("POST", f"/v1/jobs/{pj['id']}/cancel")
    wait(d, lambda d: job_state_on_page(d) == "cancelled", "the progress job's end reaches the page")


def run_restart(d, tmp, crund):
    """A job's page follows its job across a restart of crund (a durable
    store keeps the job queued for the next start).  Returns the crund
    running at the end."""
    j = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "sleep", "args": {"seconds": 3}})
    d.get(crund.url + f"/ui/#/jobs/{j['id']}")
    wait(d, lambda d: job_state_on_page(d) == "running", "the sleep job is shown running")
    rc = crund.stop()  # SIGTERM: after the 1 s grace the job is queued for the next start
    wait(d, lambda d: job_state_on_page(d) == "queued", "the job page shows the job queued at the stop")
    time.sleep(1)  # the page tries to connect while crund is down
    again = Crund(tmp, "durable-2", store=crund.store, port=crund.port)
    try:
        wait(d, lambda d: job_state_on_page(d) == "succeeded", "the job page follows the job after the restart")
        state = again.call("GET", f"/v1/jobs/{j['id']}")["state"]
        check(rc == 0 and state == "succeeded" and job_state_on_page(d) == "succeeded",
              "a job's page follows its job when crund stops (exit %s, the job kept queued) "
              "and comes back: it shows the job %s (the API: %s)" % (rc, job_state_on_page(d), state))
        shot(d, "job-after-restart.png")
    except BaseException:
        again.stop()
        raise
    return again


def run_auth(d, crund):
    base = crund.url + "/ui/"
    d.get(base)
    form = wait(d, EC.visibility_of_element_located((By.ID, "login-form")), "the sign-in form is shown with auth on")
    check(form is not None, "with a token required, the dashboard asks for it")
    shot(d, "login.png")
    if not form:
        return
    tok = d.find_element(By.ID, "token")
    tok.send_keys("wrong-token")
    tok.send_keys(Keys.ENTER)
    wait(d, EC.text_to_be_present_in_element((By.ID, "login-error"), "not accepted"), "a wrong token is refused")
    check("not accepted" in d.find_element(By.ID, "login-error").text, "a wrong token is refused with a message")
    tok.clear()
    tok.send_keys(crund.token)
    tok.send_keys(Keys.ENTER)
    ok = wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, "#state-counts")), "the overview loads after sign-in")
    check(ok is not None, "the right token opens the overview")
    check(d.execute_script("return sessionStorage.getItem('crund.token')") == crund.token,
          "the token is kept in session storage")
    wait(d, text_is((By.ID, "live"), "live"), "the event stream connects with the token")
    check(d.find_element(By.ID, "live").text == "live", "the event stream works with the token (sent as a header)")
    j = crund.call("POST", "/v1/jobs", {"plugin": "demo", "job": "noop"})
    d.get(base + f"#/jobs/{j['id']}")
    wait(d, lambda d: job_state_on_page(d) == "succeeded", "a job page loads with the token")
    check(job_state_on_page(d) == "succeeded", "API calls carry the token")
    shot(d, "overview-auth.png")
    d.find_element(By.ID, "logout").click()
    check(d.find_element(By.ID, "login-form").is_displayed()
          and d.execute_script("return sessionStorage.getItem('crund.token')") is None,
          "signing out forgets the token")


if __name__ == "__main__":
    sys.exit(main())
