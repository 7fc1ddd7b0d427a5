#!/usr/bin/env python3
"""The comparison bridge of icws-bench --ab: the alerting path of icws-bridged
written the plain way, in Python with dbus-python (libdbus underneath).

It logs in to an ICWS server (icws-sim), subscribes to interaction alerting,
reads the server-sent event stream, and emits one
io.github.icwsbridge.Bridge1.Interactions.InteractionAlerting signal (aa{sv}b,
the same keys and types as icws-bridged's) per interactionAlertingMessage.
Nothing else: no station, no users, no reconnects. It is a yardstick for CPU
per message, not a product.

  icws_python_bridge.py SERVER_URL BUS_ADDRESS USER   (password in ICWS_PASSWORD)
"""
import http.client
import json
import os
import signal
import sys
import urllib.parse

import dbus
import dbus.lowlevel

PATH = "/io/github/icwsbridge/Bridge1"
INTERFACE = "io.github.icwsbridge.Bridge1.Interactions"
ATTRIBUTES = ["Eic_RemoteName", "Eic_RemoteAddress", "Eic_State", "BenchSeq", "BenchSent"]


def detail(d):
    """One alerting detail as icws-bridged maps it (ContractMaps.alertDetail)."""
    v = {
        "interactionId": dbus.String(d.get("interactionId", "")),
        "interactionType": dbus.String(d.get("interactionType", "")),
        "name": dbus.String(d.get("name", "")),
        "address": dbus.String(d.get("address", "")),
        "alertType": dbus.UInt32(int(d.get("alertType", 0))),
        "alertAction": dbus.UInt32(int(d.get("alertAction", 0))),
        "autoAnswer": dbus.Boolean(bool(d.get("autoAnswer", False))),
    }
    if "queueType" in d:
        v["queueType"] = dbus.UInt32(int(d["queueType"]))
    if "queueName" in d:
        v["queueName"] = dbus.String(d["queueName"])
    attrs = d.get("attributes") or {}
    v["attributes"] = dbus.Dictionary({str(k): str(x) for k, x in attrs.items() if isinstance(x, str)}, signature="ss")
    return dbus.Dictionary(v, signature="sv")


def main():
    server, address, user = sys.argv[1], sys.argv[2], sys.argv[3]
    url = urllib.parse.urlsplit(server)
    http_conn = http.client.HTTPConnection(url.hostname, url.port or 80)
    body = json.dumps({
        "__type": "urn:inin.com:connection:icAuthConnectionRequestSettings",
        "applicationName": "icws-python-bridge", "userID": user, "password": os.environ.get("ICWS_PASSWORD", ""),
    })
    http_conn.request("POST", "/icws/connection", body, {"Content-Type": "application/json", "Accept-Language": "en-US"})
    r = http_conn.getresponse()
    login = json.loads(r.read() or b"{}")
    if r.status != 201:
        sys.exit(f"login failed: HTTP {r.status} {login.get('errorId', '')}")
    session, csrf = login["sessionId"], login["csrfToken"]
    cookie = (r.getheader("Set-Cookie") or "").split(";")[0]
    headers = {"ININ-ICWS-CSRF-Token": csrf, "Cookie": cookie, "Content-Type": "application/json", "Accept-Language": "en-US"}
    http_conn.request("PUT", f"/icws/{session}/messaging/subscriptions/interaction-alerting",
                      json.dumps({"attributeNames": ATTRIBUTES}), headers)
    r = http_conn.getresponse()
    r.read()
    if r.status >= 300:
        sys.exit(f"subscription failed: HTTP {r.status}")

    bus = dbus.bus.BusConnection(address)
    bus.request_name("io.github.icwsbridge.PythonBridge")

    def logout(*_):
        try:
            c = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=2)
            c.request("DELETE", f"/icws/{session}/connection", headers=headers)
            c.getresponse().read()
        except OSError:
            pass
        bus.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, logout)
    stream = http.client.HTTPConnection(url.hostname, url.port or 80)
    stream.request("GET", f"/icws/{session}/messaging/messages", headers={"Accept": "text/event-stream", "Cookie": cookie})
    r = stream.getresponse()
    if r.status != 200:
        sys.exit(f"stream failed: HTTP {r.status}")
    data = []
    while True:
        line = r.readline()
        if not line:
            break
        line = line.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" "))
            continue
        if line or not data:
            continue
        message = json.loads(b"\n".join(data))
        data = []
        if message.get("__type") != "urn:inin.com:interactions:interactionAlertingMessage":
            continue
        details = dbus.Array([detail(d) for d in message.get("alertingInteractionDetails", [])], signature="a{sv}")
        m = dbus.lowlevel.SignalMessage(PATH, INTERFACE, "InteractionAlerting")
        m.append(details, dbus.Boolean(bool(message.get("isDelta", False))), signature="aa{sv}b")
        bus.send_message(m)
    logout()


if __name__ == "__main__":
    main()
