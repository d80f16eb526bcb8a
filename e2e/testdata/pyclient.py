"""A Python client for the e2e tests: GET each URL given, keep-alive off."""
import sys
import urllib.request
import urllib.error

for url in sys.argv[1:]:
    req = urllib.request.Request(url, headers={"User-Agent": "e2e-pyclient"})
    try:
        with urllib.request.urlopen(req) as r:
            r.read()
            print(r.status)
    except urllib.error.HTTPError as e:
        print(e.code)
