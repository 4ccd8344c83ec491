#!/usr/bin/env python3
"""An evaluator of the evaluation ledger, written without any of the ledger's Rust code.

Built from proto/ledger/v1/ledger.proto and docs/ballots.md, docs/format.md and docs/records.md alone,
with Debian's python3-cryptography (Ed25519, RSA key parsing, RSASSA-PSS verification),
python3-grpcio, python3-grpc-tools and python3-protobuf. RFC 9474 blinding (RSABSSA-SHA384-PSS-
Randomized) is done here with Python integers. See README.md next to this file.

    evaluator.py keygen   --out ev.key                      # pool key (ledgerctl's key file format)
    evaluator.py request  --node URL --election-id EL --evaluator ID --key ev.key \
                          --out ev.req.json --state ev.state.json
    (the registrar: ledgerctl credential issue ... --request ev.req.json --out ev.sig.json)
    evaluator.py finalize --state ev.state.json --blind-signature ev.sig.json --out ev.cred.json
    evaluator.py cast     --node URL --credential ev.cred.json --score SUBJECT=p,f,i,o,r ... \
                          --node-key "$(cat node.vkey)" --receipt ev.receipt.json
    evaluator.py check    --node URL --receipt ev.receipt.json --node-key "$(cat node.vkey)"

Exit status: 0 done; 1 usage or local error; 3 the node refused (a JSON line on stdout names the gRPC
status and the ledger's code, e.g. FAILED_PRECONDITION / BALLOT_DUPLICATE); 4 a check failed (proof,
checkpoint signature, entry bytes).
"""

import argparse
import base64
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import sys
import tempfile

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

SUITE = "RSABSSA-SHA384-PSS-Randomized"
DIMENSIONS = ("political", "performance", "integrity", "public_opinion", "responsibility")


class Refused(Exception):
    """The node refused a call: gRPC status name and the ledger's code (the message's first word)."""

    def __init__(self, status, message):
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.code = message.split(":", 1)[0].strip()


class CheckFailed(Exception):
    """Something the evaluator checks itself did not hold."""


def b64(data):
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    return base64.b64decode(text, validate=True)


def sha256(data):
    return hashlib.sha256(data).digest()


# --- files -------------------------------------------------------------------------------------


def write_new(path, text, mode=0o644):
    """Creates `path` (never overwrites) with `mode`."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def write_json(path, value, secret=False):
    write_new(path, json.dumps(value, indent=2) + "\n", 0o600 if secret else 0o644)


def read_json(path):
    with open(path) as f:
        return json.load(f)


def read_signing_key(path):
    """ledgerctl's key file: the standard-base64 32-byte Ed25519 seed and a newline."""
    with open(path) as f:
        seed = unb64(f.read().strip())
    if len(seed) != 32:
        raise ValueError(f"{path}: not a 32-byte Ed25519 seed")
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed)


def raw_public(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def raw_seed(key):
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


# --- gRPC: code generated from proto/ at run time, into a temporary directory --------------------


class Node:
    """A connection to a node's ledger.v1.Ledger service."""

    def __init__(self, url, proto_dir):
        import grpc  # noqa: deferred, so that keygen and finalize need no gRPC

        self.grpc = grpc
        self._tmp = tempfile.mkdtemp(prefix="ledger-pb-")
        self.pb = compile_proto(proto_dir, self._tmp)
        target = re.sub(r"^https?://", "", url)
        if url.startswith("https://"):
            self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials())
        else:
            self.channel = grpc.insecure_channel(target)
        self.stub = self._import("ledger.v1.ledger_pb2_grpc").LedgerStub(self.channel)

    def _import(self, name):
        import importlib

        return importlib.import_module(name)

    def close(self):
        self.channel.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def call(self, method, request, timeout=30):
        try:
            return getattr(self.stub, method)(request, timeout=timeout)
        except self.grpc.RpcError as e:
            raise Refused(e.code().name, e.details() or "") from None

    def origin(self):
        """The log's origin: the first line of the latest checkpoint note (docs/api.md)."""
        note = self.call("GetCheckpoint", self.pb.GetCheckpointRequest()).note
        return note.split("\n", 1)[0]

    def query(self, kind, draw_id):
        """Every entry of `kind` about draw or election `draw_id` (all pages)."""
        out, page_start = [], 0
        while True:
            r = self.call(
                "Query",
                self.pb.QueryRequest(
                    kind=kind, draw_id=draw_id, page_start=page_start, limit=1000, with_entries=True
                ),
            )
            out.extend(r.entries)
            if r.next_page_start == 0 or r.next_page_start <= page_start:
                return out
            page_start = r.next_page_start


def compile_proto(proto_dir, out_dir):
    """Generates ledger_pb2 / ledger_pb2_grpc from proto/ with grpc_tools' protoc into `out_dir`.

    Debian bookworm's python3-grpc-tools (1.14) bundles a protoc from before proto3 `optional`; when
    it refuses the file, the `optional` label is dropped from a copy. That changes nothing on the wire
    (the field is encoded the same way; only "absent" and "zero" become one, and this example never
    sets or reads that field: GetCheckpointRequest.size, absent = latest).
    """
    from grpc_tools import protoc

    src = os.path.join(out_dir, "src")
    os.makedirs(os.path.join(src, "ledger", "v1"))
    with open(os.path.join(proto_dir, "ledger", "v1", "ledger.proto")) as f:
        text = f.read()
    dst = os.path.join(src, "ledger", "v1", "ledger.proto")

    def run(proto_text):
        with open(dst, "w") as f:
            f.write(proto_text)
        args = ["protoc", f"-I{src}", f"--python_out={out_dir}", f"--grpc_python_out={out_dir}"]
        return protoc.main(args + ["ledger/v1/ledger.proto"])

    if run(text) != 0:
        print("evaluator.py: this protoc predates proto3 `optional`; compiling without the label", file=sys.stderr)
        if run(re.sub(r"(?m)^(\s*)optional\s+", r"\1", text)) != 0:
            raise RuntimeError("protoc could not compile ledger.proto")
    for d in ("ledger", os.path.join("ledger", "v1")):
        open(os.path.join(out_dir, d, "__init__.py"), "a").close()
    sys.path.insert(0, out_dir)
    import importlib

    return importlib.import_module("ledger.v1.ledger_pb2")


# --- DSSE envelopes (docs/format.md) -------------------------------------------------------------


def payload_type(kind, origin):
    return f'application/vnd.ledger.{kind}.v1+json; log="{origin}"'


def pae(ptype, body):
    t = ptype.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def key_id(public_raw):
    return sha256(public_raw).hex()


def sign_envelope(pb, kind, origin, payload, key):
    ptype = payload_type(kind, origin)
    sig = key.sign(pae(ptype, payload))
    return pb.Envelope(
        payload_type=ptype,
        payload=payload,
        signatures=[pb.Signature(keyid=key_id(raw_public(key)), sig=sig)],
    )


def leaf_bytes(entry):
    """The canonical entry encoding of docs/format.md ("Entry (leaf bytes)"), rebuilt field by field."""

    def u64(n):
        return n.to_bytes(8, "little")

    def blob(b):
        return u64(len(b)) + b

    env = entry.envelope
    out = b"\x01" + u64(entry.index) + u64(entry.timestamp_micros) + entry.prev_root
    out += blob(env.payload_type.encode("utf-8")) + blob(env.payload) + u64(len(env.signatures))
    for s in env.signatures:
        out += blob(s.keyid.encode("utf-8")) + blob(s.sig)
    return out


# --- RFC 9162 inclusion proofs and C2SP signed notes (docs/format.md) ---------------------------


def leaf_hash(leaf):
    return sha256(b"\x00" + leaf)


def verify_inclusion(index, size, lhash, proof, root):
    """RFC 9162 §2.1.3.2."""
    if index >= size:
        return False
    fn, sn, r = index, size - 1, lhash
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            if not fn & 1:
                while not fn & 1 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = sha256(b"\x01" + r + p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_note(note, vkey):
    """Checks the Ed25519 signature of the key `vkey` (name+hash+base64(0x01‖pk)) on a C2SP signed
    note; returns (origin, size, root) of the checkpoint body."""
    name, khash, kdata = vkey.strip().split("+", 2)  # a key name has no "+"; base64 may
    kbytes = unb64(kdata)
    if len(kbytes) != 33 or kbytes[0] != 0x01:
        raise CheckFailed("node key: not an Ed25519 verifier key")
    pk = kbytes[1:]
    expect = sha256(name.encode() + b"\n\x01" + pk)[:4]
    if expect.hex() != khash:
        raise CheckFailed("node key: key hash does not match")
    body, sep, sigs = note.partition("\n\n")
    if not sep:
        raise CheckFailed("checkpoint: not a signed note")
    body += "\n"
    verified = False
    for line in sigs.splitlines():
        if not line.startswith("\u2014 "):
            continue
        who, _, data = line[2:].rpartition(" ")
        raw = unb64(data)
        if who != name or raw[:4] != expect:
            continue
        try:
            ed25519.Ed25519PublicKey.from_public_bytes(pk).verify(raw[4:], body.encode())
        except InvalidSignature:
            raise CheckFailed("checkpoint: the node's signature does not verify") from None
        verified = True
    if not verified:
        raise CheckFailed("checkpoint: no signature by the node key")
    lines = body.split("\n")
    return lines[0], int(lines[1]), unb64(lines[2])


# --- RFC 9474 RSABSSA-SHA384-PSS-Randomized, with Python integers (docs/ballots.md) -------------

H_LEN = 48  # SHA-384
S_LEN = 48  # PSS salt


def mgf1_sha384(seed, length):
    out, counter = b"", 0
    while len(out) < length:
        out += hashlib.sha384(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def emsa_pss_encode(msg, em_bits):
    """RFC 8017 §9.1.1 with SHA-384, MGF1-SHA-384 and a 48-byte random salt."""
    em_len = math.ceil(em_bits / 8)
    m_hash = hashlib.sha384(msg).digest()
    if em_len < H_LEN + S_LEN + 2:
        raise ValueError("RSA modulus too small")
    salt = secrets.token_bytes(S_LEN)
    h = hashlib.sha384(b"\x00" * 8 + m_hash + salt).digest()
    db = b"\x00" * (em_len - S_LEN - H_LEN - 2) + b"\x01" + salt
    masked = bytes(a ^ b for a, b in zip(db, mgf1_sha384(h, em_len - H_LEN - 1)))
    zero_bits = 8 * em_len - em_bits
    masked = bytes([masked[0] & (0xFF >> zero_bits)]) + masked[1:]
    return masked + h + b"\xbc"


def credential_message(election_id, ballot_public_raw):
    """docs/ballots.md: "ledger-credential-v1" ‖ 0x00 ‖ election_id ‖ 0x00 ‖ one-time public key."""
    return b"ledger-credential-v1\x00" + election_id.encode("utf-8") + b"\x00" + ballot_public_raw


def load_credential_key(b64_spki):
    key = serialization.load_der_public_key(unb64(b64_spki))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the election's credential key is not an RSA key")
    return key


def blind(pub, msg):
    """RFC 9474 Prepare (randomized: a 32-byte prefix) and Blind. Returns (prefix, blinded, inv)."""
    nums = pub.public_numbers()
    n, e = nums.n, nums.e
    k_len = (n.bit_length() + 7) // 8
    prefix = secrets.token_bytes(32)
    encoded = emsa_pss_encode(prefix + msg, n.bit_length() - 1)
    m = int.from_bytes(encoded, "big")
    if math.gcd(m, n) != 1:
        raise ValueError("invalid input")
    while True:
        r = secrets.randbelow(n - 1) + 1
        if math.gcd(r, n) == 1:
            break
    inv = pow(r, -1, n)
    z = (m * pow(r, e, n)) % n
    return prefix, z.to_bytes(k_len, "big"), inv


def finalize(pub, prefix, msg, blind_sig, inv):
    """RFC 9474 Finalize: unblind, then check it is an RSASSA-PSS signature over prefix ‖ msg."""
    n = pub.public_numbers().n
    k_len = (n.bit_length() + 7) // 8
    if len(blind_sig) != k_len:
        raise CheckFailed("blind signature: wrong length")
    z = int.from_bytes(blind_sig, "big")
    if z >= n:
        raise CheckFailed("blind signature: out of range")
    sig = ((z * inv) % n).to_bytes(k_len, "big")
    try:
        pub.verify(
            sig,
            prefix + msg,
            padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=S_LEN),
            hashes.SHA384(),
        )
    except InvalidSignature:
        raise CheckFailed("the unblinded credential does not verify under the election key") from None
    return sig


def credential_request_message(election_id, evaluator, blinded):
    """docs/ballots.md, "Issuance needs the evaluator": the bytes the pool key signs."""
    e, v = election_id.encode("utf-8"), evaluator.encode("utf-8")
    return (
        b"ledger credential request v1\x00"
        + len(e).to_bytes(4, "big")
        + e
        + len(v).to_bytes(4, "big")
        + v
        + sha256(blinded)
    )


# --- commands ------------------------------------------------------------------------------------


def fetch_election(node, election_id):
    prefix = "application/vnd.ledger.election.open.v1+json"
    for e in node.query("election.open", election_id):
        if not e.envelope.payload_type.startswith(prefix):
            continue
        open_ = json.loads(e.envelope.payload)
        if open_.get("election_id") == election_id:
            return open_
    raise CheckFailed(f"election {election_id} is not open in this log")


def cmd_keygen(args):
    key = ed25519.Ed25519PrivateKey.generate()
    write_new(args.out, b64(raw_seed(key)) + "\n", 0o600)
    write_new(args.out + ".pub", b64(raw_public(key)) + "\n")
    print(json.dumps({"key": args.out, "public_key": b64(raw_public(key))}))


def cmd_request(args):
    node = Node(args.node, args.proto_dir)
    try:
        open_ = fetch_election(node, args.election_id)
    finally:
        node.close()
    if open_.get("credential_suite") != SUITE:
        raise CheckFailed(f"unsupported credential suite {open_.get('credential_suite')!r}")
    pub = load_credential_key(open_["credential_key"])
    ballot_key = ed25519.Ed25519PrivateKey.generate()
    msg = credential_message(args.election_id, raw_public(ballot_key))
    prefix, blinded, inv = blind(pub, msg)
    request = {
        "version": 1,
        "election_id": args.election_id,
        "evaluator": args.evaluator,
        "credential_key": open_["credential_key"],
        "blinded_message": b64(blinded),
    }
    if args.key:
        pool_key = read_signing_key(args.key)
        m = credential_request_message(args.election_id, args.evaluator, blinded)
        request["request_signature"] = b64(pool_key.sign(m))
    # Local only (mode 0600): the ballot key, and what would link the credential to this evaluator.
    state = {
        "election_id": args.election_id,
        "evaluator": args.evaluator,
        "credential_key": open_["credential_key"],
        "ballot_key_seed": b64(raw_seed(ballot_key)),
        "randomizer": prefix.hex(),
        "blinding_inverse": format(inv, "x"),
        "blinded_message": b64(blinded),
    }
    write_json(args.state, state, secret=True)
    write_json(args.out, request)
    print(json.dumps({"request": args.out, "evaluator": args.evaluator, "election_id": args.election_id}))


def cmd_finalize(args):
    state = read_json(args.state)
    sig = read_json(args.blind_signature)
    if sig.get("election_id") != state["election_id"] or sig.get("evaluator") != state["evaluator"]:
        raise CheckFailed("the blind signature is for another election or evaluator")
    pub = load_credential_key(state["credential_key"])
    ballot_key = ed25519.Ed25519PrivateKey.from_private_bytes(unb64(state["ballot_key_seed"]))
    prefix = bytes.fromhex(state["randomizer"])
    msg = credential_message(state["election_id"], raw_public(ballot_key))
    signature = finalize(pub, prefix, msg, unb64(sig["blind_signature"]), int(state["blinding_inverse"], 16))
    cred = {
        "election_id": state["election_id"],
        "ballot_key_seed": state["ballot_key_seed"],
        "credential": {"randomizer": prefix.hex(), "signature": b64(signature)},
    }
    write_json(args.out, cred, secret=True)
    print(json.dumps({"credential": args.out, "verified": True}))


def parse_scores(items):
    out = []
    for item in items:
        subject, sep, values = item.partition("=")
        nums = values.split(",")
        if not sep or len(nums) != len(DIMENSIONS):
            raise ValueError(f"--score {item!r}: want SUBJECT=political,performance,integrity,public_opinion,responsibility")
        out.append({"subject": subject, "scores": dict(zip(DIMENSIONS, (int(x) for x in nums)))})
    return out


def cmd_cast(args):
    cred = read_json(args.credential)
    ballot_key = ed25519.Ed25519PrivateKey.from_private_bytes(unb64(cred["ballot_key_seed"]))
    ballot = {
        "version": 1,
        "election_id": cred["election_id"],
        "scores": parse_scores(args.score),
        "ballot_key": b64(raw_public(ballot_key)),
        "credential": cred["credential"],
    }
    payload = json.dumps(ballot, separators=(",", ":")).encode("utf-8")
    node = Node(args.node, args.proto_dir)
    try:
        pb = node.pb
        env = sign_envelope(pb, "ballot", node.origin(), payload, ballot_key)
        # The same ballot sent again (a lost answer) gets its entry back: request id from the payload.
        req = pb.AppendRequest(
            envelope=env, request_id="ballot-" + sha256(payload).hex(), wait_for_checkpoint=True
        )
        r = node.call("Append", req)
        receipt = {
            "version": 1,
            "election_id": ballot["election_id"],
            "index": r.index,
            "leaf_hash": r.leaf_hash.hex(),
            "timestamp_micros": r.timestamp_micros,
            "ballot_key": ballot["ballot_key"],
            "checkpoint": r.checkpoint,
            "inclusion_proof": [h.hex() for h in r.inclusion_proof],
        }
        entry = check_receipt(node, receipt, args.node_key)
    finally:
        node.close()
    if entry.envelope.SerializeToString() != env.SerializeToString():
        raise CheckFailed(f"entry {r.index} is not this ballot")
    if args.receipt:
        write_json(args.receipt, receipt, secret=True)
    print(
        json.dumps(
            {
                "cast": True,
                "index": r.index,
                "duplicate": r.duplicate,
                "leaf_hash": r.leaf_hash.hex(),
                "proof_verified": bool(args.node_key),
            }
        )
    )


def check_receipt(node, receipt, node_key):
    """The receipt's entry, read back from the node, is a ballot with the receipt's key; its leaf
    bytes, rebuilt here from docs/format.md, hash to the receipt's leaf hash; and (with the node key)
    the inclusion proof leads to the root of a checkpoint signed by the node. Returns the entry."""
    index, lhash = receipt["index"], bytes.fromhex(receipt["leaf_hash"])
    entry = node.call("GetEntry", node.pb.GetEntryRequest(index=index))
    if not entry.envelope.payload_type.startswith("application/vnd.ledger.ballot.v1+json"):
        raise CheckFailed(f"entry {index} is not a ballot")
    ballot = json.loads(entry.envelope.payload)
    if ballot.get("ballot_key") != receipt["ballot_key"] or ballot.get("election_id") != receipt["election_id"]:
        raise CheckFailed(f"entry {index} is not this ballot")
    leaf = leaf_bytes(entry)
    if leaf != entry.leaf or leaf_hash(leaf) != lhash or entry.leaf_hash != lhash:
        raise CheckFailed(f"entry {index}: the leaf bytes or leaf hash do not match the receipt")
    if node_key:
        _, size, root = verify_note(receipt["checkpoint"], node_key)
        proof = [bytes.fromhex(h) for h in receipt["inclusion_proof"]]
        if not verify_inclusion(index, size, lhash, proof, root):
            raise CheckFailed("the inclusion proof does not lead to the checkpoint's root")
    return entry


def cmd_check(args):
    receipt = read_json(args.receipt)
    node = Node(args.node, args.proto_dir)
    try:
        check_receipt(node, receipt, args.node_key)
    finally:
        node.close()
    print(json.dumps({"in_log": True, "index": receipt["index"], "proof_verified": True}))


def main(argv=None):
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--proto-dir", default=os.path.join(here, "..", "..", "proto"), help="the repository's proto/")
    sub = p.add_subparsers(dest="cmd", required=True)
    k = sub.add_parser("keygen", help="a pool key for the draw (ledgerctl's key file format)")
    k.add_argument("--out", required=True)
    r = sub.add_parser("request", help="one-time ballot key + blinded credential request")
    r.add_argument("--node", required=True)
    r.add_argument("--election-id", required=True)
    r.add_argument("--evaluator", required=True)
    r.add_argument("--key", help="the evaluator's pool key file (signs the request)")
    r.add_argument("--out", required=True, help="request file for the registrar")
    r.add_argument("--state", required=True, help="local secrets (mode 0600)")
    f = sub.add_parser("finalize", help="unblind the registrar's blind signature")
    f.add_argument("--state", required=True)
    f.add_argument("--blind-signature", required=True)
    f.add_argument("--out", required=True, help="credential file (mode 0600)")
    c = sub.add_parser("cast", help="cast the ballot, check its receipt")
    c.add_argument("--node", required=True)
    c.add_argument("--credential", required=True)
    c.add_argument("--score", action="append", required=True, help="SUBJECT=p,f,i,o,r (repeat per subject)")
    c.add_argument("--node-key", help="the node's verifier key (keys/node.vkey) to check the checkpoint")
    c.add_argument("--receipt", help="write the receipt here (ledgerctl ballot check reads it)")
    ck = sub.add_parser("check", help="check a receipt against the log and the node key")
    ck.add_argument("--node", required=True)
    ck.add_argument("--receipt", required=True)
    ck.add_argument("--node-key", required=True)
    args = p.parse_args(argv)
    try:
        commands = {"keygen": cmd_keygen, "request": cmd_request, "finalize": cmd_finalize, "cast": cmd_cast, "check": cmd_check}
        commands[args.cmd](args)
    except Refused as e:
        print(json.dumps({"refused": True, "status": e.status, "code": e.code, "message": e.message}))
        print(f"evaluator.py: the node refused: {e}", file=sys.stderr)
        return 3
    except CheckFailed as e:
        print(json.dumps({"check_failed": True, "message": str(e)}))
        print(f"evaluator.py: check failed: {e}", file=sys.stderr)
        return 4
    except (OSError, ValueError, KeyError) as e:
        print(json.dumps({"error": True, "message": str(e)}))
        print(f"evaluator.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
