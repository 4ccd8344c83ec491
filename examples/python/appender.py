#!/usr/bin/env python3
"""Concurrent appends from a client not written in Rust, and every answer checked by this client.

A service platform (a key enrolled with role `service-platform`) sends citizen micro-evaluations
(`evaluation.micro`, docs/records.md) to a node from many threads at once, built from
proto/ledger/v1/ledger.proto and docs/format.md alone (the helpers of evaluator.py next to this
file: DSSE signing, the canonical entry bytes, RFC 9162 inclusion proofs, C2SP signed notes). It
then races the node's promises the way a retrying or careless client would:

  1. `--threads` threads append `--per` micro-evaluations each, each with its own request id;
  2. `--races` times, one request id sent at the same moment by six threads with one envelope and
     by a seventh with another envelope: one entry, every sender of the winning envelope gets its
     index (exactly one not marked duplicate), every sender of the other gets ALREADY_EXISTS;
  3. `--races` times, two request ids rating the same ticket at the same moment: one entry, the
     other refused FAILED_PRECONDITION / MICRO_DUPLICATE_TICKET;

and checks, once a checkpoint signed by the node key covers them, every accepted entry: its leaf
bytes rebuilt here hash to the leaf hash the node answered, its envelope is the one sent, and its
inclusion proof leads to the checkpoint's root; reading the whole log, each accepted ticket is
there exactly once.

    appender.py --node URL --key platform.key --node-key "$(cat node.vkey)" \
                [--threads 16] [--per 25] [--races 8]

Prints one JSON line (the counts) on stdout. Exit status: 0 every check held; 1 usage or local
error; 4 a check failed (the JSON line says which).
"""

import argparse
import json
import os
import secrets
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import evaluator as ev  # noqa: E402  (the helpers next to this file)


def micro_payload(ticket, n, rating=None):
    """An `evaluation.micro` payload (docs/records.md) for `ticket` (64 hex digits)."""
    now = int(time.time() * 1_000_000)
    body = {
        "version": 1,
        "ticket_hash": ticket,
        "subject": f"cadre-{n % 7}",
        "department": f"dept-{n % 3}",
        "rating": rating if rating is not None else 1 + n % 5,
        "service_time_micros": now - 3_600_000_000,
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class Appender:
    def __init__(self, node, key, origin):
        self.node, self.key, self.origin = node, key, origin
        self.lock = threading.Lock()
        # index -> (leaf hash the node answered, envelope payload sent)
        self.accepted = {}

    def envelope(self, payload):
        return ev.sign_envelope(self.node.pb, "evaluation.micro", self.origin, payload, self.key)

    def append(self, env, request_id):
        """("ok", index, duplicate) or ("refused", status, ledger code)."""
        try:
            r = self.node.call("Append", self.node.pb.AppendRequest(envelope=env, request_id=request_id))
        except ev.Refused as e:
            return ("refused", e.status, e.code)
        with self.lock:
            seen = self.accepted.get(r.index)
            if seen is not None and seen != (r.leaf_hash, env.payload):
                raise ev.CheckFailed(f"index {r.index} answered for two different entries")
            self.accepted[r.index] = (r.leaf_hash, env.payload)
        return ("ok", r.index, r.duplicate)


def run_threads(targets):
    """Runs the callables at once (after a common barrier); returns their results in order."""
    results = [None] * len(targets)
    errors = []
    barrier = threading.Barrier(len(targets))

    def body(i, f):
        try:
            barrier.wait(timeout=30)
            results[i] = f()
        except Exception as e:  # reported below, on the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i, f)) for i, f in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def phase_bulk(a, threads, per, tickets):
    def worker(t):
        def go():
            out = []
            for i in range(per):
                ticket = secrets.token_hex(32)
                out.append((ticket, a.append(a.envelope(micro_payload(ticket, t * per + i)), f"py-{t}-{i}")))
            return out

        return go

    appended = 0
    for rows in run_threads([worker(t) for t in range(threads)]):
        for ticket, r in rows:
            if r[0] != "ok" or r[2]:
                raise ev.CheckFailed(f"a fresh append was answered {r}")
            tickets[ticket] = r[1]
            appended += 1
    return appended


def phase_request_id_races(a, races, tickets):
    for k in range(races):
        ta, tb = secrets.token_hex(32), secrets.token_hex(32)
        env_a, env_b = a.envelope(micro_payload(ta, k)), a.envelope(micro_payload(tb, k))
        rid = f"race-{k}-{secrets.token_hex(4)}"
        senders = [env_a] * 6 + [env_b]
        results = run_threads([(lambda e=e: a.append(e, rid)) for e in senders])
        won = {("a" if e is env_a else "b") for e, r in zip(senders, results) if r[0] == "ok"}
        if len(won) != 1:
            raise ev.CheckFailed(f"request id race {k}: accepted envelopes {sorted(won)}: {results}")
        winner = env_a if won == {"a"} else env_b
        oks = [r for e, r in zip(senders, results) if e is winner]
        others = [r for e, r in zip(senders, results) if e is not winner]
        if any(r[0] != "ok" for r in oks) or len({r[1] for r in oks}) != 1:
            raise ev.CheckFailed(f"request id race {k}: the winning envelope's senders got {oks}")
        if sum(1 for r in oks if not r[2]) != 1:
            raise ev.CheckFailed(f"request id race {k}: not exactly one first answer: {oks}")
        if any(r[:2] != ("refused", "ALREADY_EXISTS") for r in others):
            raise ev.CheckFailed(f"request id race {k}: the other envelope's senders got {others}")
        tickets[ta if winner is env_a else tb] = oks[0][1]


def phase_ticket_races(a, races, tickets):
    refused = 0
    for k in range(races):
        ticket = secrets.token_hex(32)
        envs = [a.envelope(micro_payload(ticket, k, rating=1)), a.envelope(micro_payload(ticket, k, rating=5))]
        rids = [f"ticket-{k}-{j}-{secrets.token_hex(4)}" for j in range(2)]
        results = run_threads([(lambda e=e, r=r: a.append(e, r)) for e, r in zip(envs, rids)])
        oks = [r for r in results if r[0] == "ok"]
        nos = [r for r in results if r[0] != "ok"]
        if len(oks) != 1 or oks[0][2] or nos != [("refused", "FAILED_PRECONDITION", "MICRO_DUPLICATE_TICKET")]:
            raise ev.CheckFailed(f"ticket race {k}: {results}")
        tickets[ticket] = oks[0][1]
        refused += 1
    return refused


def covering_checkpoint(node, node_key, index, timeout_s=20):
    """The latest checkpoint once it covers `index`, its signature checked: (size, root)."""
    deadline = time.time() + timeout_s
    while True:
        note = node.call("GetCheckpoint", node.pb.GetCheckpointRequest()).note
        _, size, root = ev.verify_note(note, node_key)
        if size > index:
            return size, root
        if time.time() > deadline:
            raise ev.CheckFailed(f"no checkpoint covers index {index} after {timeout_s} s")
        time.sleep(0.1)


def check_all(a, node_key, tickets):
    size, root = covering_checkpoint(a.node, node_key, max(a.accepted))
    for index, (lhash, payload) in sorted(a.accepted.items()):
        entry = a.node.call("GetEntry", a.node.pb.GetEntryRequest(index=index))
        leaf = ev.leaf_bytes(entry)
        if leaf != entry.leaf or ev.leaf_hash(leaf) != lhash or entry.leaf_hash != lhash:
            raise ev.CheckFailed(f"entry {index}: its leaf bytes do not hash to the answered leaf hash")
        if entry.envelope.payload != payload:
            raise ev.CheckFailed(f"entry {index}: not the envelope sent")
        proof = a.node.call("GetInclusionProof", a.node.pb.GetInclusionProofRequest(index=index, tree_size=size))
        if not ev.verify_inclusion(index, size, lhash, list(proof.hashes), root):
            raise ev.CheckFailed(f"entry {index}: the inclusion proof does not lead to the checkpoint's root")
    # The whole log: each accepted ticket exactly once, at the index the node answered.
    found = {}
    for entry in a.node.stub.GetEntries(a.node.pb.GetEntriesRequest(start=0, end=size), timeout=60):
        if entry.envelope.payload_type.startswith("application/vnd.ledger.evaluation.micro.v1+json"):
            t = json.loads(entry.envelope.payload).get("ticket_hash")
            if t in tickets:
                found.setdefault(t, []).append(entry.index)
    for t, index in tickets.items():
        if found.get(t) != [index]:
            raise ev.CheckFailed(f"ticket {t}: in the log at {found.get(t)}, answered {index}")
    return size


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", required=True)
    p.add_argument("--key", required=True, help="the service platform's key file (ledgerctl keygen)")
    p.add_argument("--node-key", required=True, help="the node's verifier key (keys/node.vkey)")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--per", type=int, default=25)
    p.add_argument("--races", type=int, default=8)
    p.add_argument("--proto-dir", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../proto"))
    args = p.parse_args()
    node = ev.Node(args.node, args.proto_dir)
    try:
        a = Appender(node, ev.read_signing_key(args.key), node.origin())
        tickets = {}
        appended = phase_bulk(a, args.threads, args.per, tickets)
        phase_request_id_races(a, args.races, tickets)
        refused = phase_ticket_races(a, args.races, tickets)
        size = check_all(a, args.node_key, tickets)
        print(
            json.dumps(
                {
                    "appended": appended,
                    "request_id_races": args.races,
                    "ticket_races_refused": refused,
                    "entries_checked": len(a.accepted),
                    "tree_size": size,
                }
            )
        )
        return 0
    except ev.CheckFailed as e:
        print(json.dumps({"check_failed": str(e)}))
        return 4
    finally:
        node.close()


if __name__ == "__main__":
    sys.exit(main())
