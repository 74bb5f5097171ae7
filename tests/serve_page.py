"""Drives lm serve's chat page in headless Chromium (tests/test_serve.c runs it).

usage: serve_page.py CHROMIUM PAGE_URL MESSAGE SCREENSHOT.png
Loads the page, types MESSAGE, sends it, waits (at most 2 minutes) for the
streamed reply to end, saves a screenshot and prints the reply's text as it
is in the DOM, as JSON. Speaks the DevTools protocol over a WebSocket of its
own (the standard library has no client), to 127.0.0.1 only."""
import base64, json, os, re, shutil, socket, struct, subprocess, sys, tempfile, time, urllib.request

chromium, url, message, shot = sys.argv[1:5]


class WebSocket:
    def __init__(self, ws_url):
        m = re.match(r"ws://([^/:]+):(\d+)(/.*)", ws_url)
        self.s = socket.create_connection((m.group(1), int(m.group(2))), timeout=120)
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET {m.group(3)} HTTP/1.1\r\nHost: {m.group(1)}:{m.group(2)}\r\nUpgrade: websocket\r\n"
                        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.s.recv(1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0

    def recv_exact(self, n):
        b = b""
        while len(b) < n:
            chunk = self.s.recv(n - len(b))
            assert chunk, "DevTools closed the connection"
            b += chunk
        return b

    def send(self, obj):
        data, mask = json.dumps(obj).encode(), os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else struct.pack(">BH", 0x80 | 126, n) if n < 65536
                                 else struct.pack(">BQ", 0x80 | 127, n))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv(self):
        msg = b""
        while True:
            b0, b1 = self.recv_exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self.recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self.recv_exact(8))[0]
            msg += self.recv_exact(n)
            if b0 & 0x80:
                return json.loads(msg)

    def call(self, method, **params):
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while True:
            r = self.recv()
            if r.get("id") == self.next_id:
                assert "error" not in r, r
                return r["result"]


def evaluate(ws, expr):
    return ws.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)["result"].get("value")


profile = tempfile.mkdtemp(prefix="lm-chromium-")
log = open(os.path.join(profile, "stderr.txt"), "w+")
browser = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                            "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                            f"--user-data-dir={profile}", "--window-size=900,700", "about:blank"],
                           stdout=subprocess.DEVNULL, stderr=log)
try:
    port, deadline = None, time.time() + 60
    while not port and time.time() < deadline and browser.poll() is None:
        time.sleep(0.1)
        log.seek(0)
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", log.read())
        port = m and m.group(1)
    assert port, "Chromium did not start its DevTools server"
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30))
    ws = WebSocket(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])
    ws.call("Page.enable")
    ws.call("Page.navigate", url=url)
    deadline = time.time() + 120
    while evaluate(ws, "document.readyState + !!document.getElementById('input')") != "completetrue":
        assert time.time() < deadline, "the page did not load"
        time.sleep(0.1)
    evaluate(ws, f"document.getElementById('input').value = {json.dumps(message)};"
                 "document.getElementById('form').requestSubmit(); true")
    done = ("document.querySelector('.assistant') && document.getElementById('stop').disabled"
            " && document.getElementById('speed').textContent !== ''")
    while not evaluate(ws, done):
        assert time.time() < deadline, "no complete reply within 2 minutes"
        time.sleep(0.2)
    reply = evaluate(ws, "document.querySelector('.assistant .answer').textContent")
    speed = evaluate(ws, "document.getElementById('speed').textContent")
    with open(shot, "wb") as f:
        f.write(base64.b64decode(ws.call("Page.captureScreenshot", format="png")["data"]))
    print(json.dumps({"reply": reply, "speed": speed}))
finally:
    browser.kill()
    browser.wait()
    shutil.rmtree(profile, ignore_errors=True)
