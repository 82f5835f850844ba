"""A private CA and every certificate the lab's control plane and kubelet need.

One CA signs everything (serving and client certificates alike): the lab is single-tenant and
short-lived, so a separate client CA or front-proxy CA would add files and no safety. Keys are
ECDSA P-256: fast to generate and cheap for the TCG guest's kubelet to use in TLS handshakes.

Layout under the PKI directory (all PEM; keys mode 0600):
    ca.crt ca.key
    apiserver.crt/.key                 serving cert of kube-apiserver
    admin.crt/.key                     CN=kubernetes-admin, O=system:masters
    controller-manager.crt/.key        CN=system:kube-controller-manager
    scheduler.crt/.key                 CN=system:kube-scheduler
    apiserver-kubelet-client.crt/.key  CN=kube-apiserver-kubelet-client, O=system:masters
    front-proxy-client.crt/.key        CN=front-proxy-client (aggregation requestheader)
    node-<name>.crt/.key               CN=system:node:<name>, O=system:nodes
    kubelet-serving-<name>.crt/.key    serving cert of that node's kubelet
    sa.key sa.pub                      service-account token signing pair
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from numacert.errors import InfrastructureError

CA_DAYS = 3650
LEAF_DAYS = 365
DEFAULT_SERVICE_CIDR = "10.96.0.0/16"
# What the host uses, and what a qemu user-mode (slirp) guest uses to reach the host.
HOST_SERVER = "https://127.0.0.1:6443"
GUEST_SERVER = "https://10.0.2.2:6443"
APISERVER_DNS = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 "kubernetes.default.svc.cluster.local")
APISERVER_IPS = ("127.0.0.1", "10.0.2.2")

ADMIN_USER = "kubernetes-admin"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
SCHEDULER_USER = "system:kube-scheduler"
KUBELET_CLIENT_USER = "kube-apiserver-kubelet-client"
FRONT_PROXY_USER = "front-proxy-client"
MASTERS_GROUP = "system:masters"
NODES_GROUP = "system:nodes"


@dataclass(frozen=True)
class CertPair:
    """A certificate and its private key on disk."""

    cert: Path
    key: Path

    def load_cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert.read_bytes())


def first_service_ip(service_cidr: str) -> str:
    """The ClusterIP of the `kubernetes` Service: the first host address of the range."""
    net = ipaddress.ip_network(service_cidr, strict=True)
    return str(net.network_address + 1)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, private: bool = False) -> None:
    # Written to a temp name and renamed so that a crash never leaves half a PEM behind.
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


def _name(cn: str, orgs: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _sans(dns: Iterable[str], ips: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in dict.fromkeys(dns)]
    names += [x509.IPAddress(ipaddress.ip_address(i)) for i in dict.fromkeys(ips)]
    return x509.SubjectAlternativeName(names)


class PKI:
    """The lab's CA and its certificates in `directory`. Existing files are reused (so a
    restarted control plane keeps its identity and kubeconfigs stay valid); missing ones are
    made on demand."""

    def __init__(self, directory: Path | str, service_cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.directory = Path(directory)
        self.service_cidr = service_cidr
        self._ca_cert: x509.Certificate | None = None
        self._ca_key: ec.EllipticCurvePrivateKey | None = None

    # ---- the CA

    @property
    def ca(self) -> CertPair:
        return CertPair(self.directory / "ca.crt", self.directory / "ca.key")

    def ensure_ca(self) -> CertPair:
        pair = self.ca
        if pair.cert.exists() and pair.key.exists():
            self._load_ca()
            return pair
        key = _new_key()
        now = dt.datetime.now(dt.UTC)
        subject = _name("numacert-lab-ca")
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256())
        )
        _write(pair.key, _key_pem(key), private=True)
        _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
        self._ca_cert, self._ca_key = cert, key
        return pair

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        if self._ca_cert is None or self._ca_key is None:
            if not (self.ca.cert.exists() and self.ca.key.exists()):
                self.ensure_ca()
            else:
                self._ca_cert = self.ca.load_cert()
                key = serialization.load_pem_private_key(self.ca.key.read_bytes(), None)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise InfrastructureError(f"{self.ca.key}: not an ECDSA key")
                self._ca_key = key
        assert self._ca_cert is not None and self._ca_key is not None
        return self._ca_cert, self._ca_key

    # ---- leaf certificates

    def issue(self, name: str, cn: str, orgs: Sequence[str] = (), *, server: bool = False,
              client: bool = False, dns: Sequence[str] = (), ips: Sequence[str] = (),
              reuse: bool = True) -> CertPair:
        """Sign `<name>.crt`/`<name>.key` for subject CN=cn, O=orgs with the given usages.
        With `reuse`, an existing pair whose subject and SANs already match is kept."""
        if not (server or client):
            raise ValueError("a leaf certificate needs server and/or client usage")
        pair = CertPair(self.directory / f"{name}.crt", self.directory / f"{name}.key")
        if reuse and self._matches(pair, cn, orgs, dns, ips):
            return pair
        ca_cert, ca_key = self._load_ca()
        key = _new_key()
        now = dt.datetime.now(dt.UTC)
        ekus = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + \
               ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, orgs))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=True, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False,
                                         decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
        )
        if dns or ips:
            builder = builder.add_extension(_sans(dns, ips), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        _write(pair.key, _key_pem(key), private=True)
        _write(pair.cert, cert.public_bytes(serialization.Encoding.PEM))
        return pair

    def _matches(self, pair: CertPair, cn: str, orgs: Sequence[str], dns: Sequence[str],
                 ips: Sequence[str]) -> bool:
        if not (pair.cert.exists() and pair.key.exists()):
            return False
        try:
            cert = pair.load_cert()
        except ValueError:
            return False
        if cert.subject != _name(cn, orgs):
            return False
        if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=1):
            return False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            have_dns = set(san.get_values_for_type(x509.DNSName))
            have_ips = {str(i) for i in san.get_values_for_type(x509.IPAddress)}
        except x509.ExtensionNotFound:
            have_dns, have_ips = set(), set()
        want_ips = {str(ipaddress.ip_address(i)) for i in ips}
        return have_dns == set(dns) and have_ips == want_ips

    def apiserver(self, extra_dns: Sequence[str] = (), extra_ips: Sequence[str] = ()) -> CertPair:
        dns = [*APISERVER_DNS, *extra_dns]
        ips = [*APISERVER_IPS, first_service_ip(self.service_cidr), *extra_ips]
        return self.issue("apiserver", "kube-apiserver", server=True, dns=dns, ips=ips)

    def admin(self) -> CertPair:
        return self.issue("admin", ADMIN_USER, [MASTERS_GROUP], client=True)

    def controller_manager(self) -> CertPair:
        return self.issue("controller-manager", CONTROLLER_MANAGER_USER, client=True)

    def scheduler(self) -> CertPair:
        return self.issue("scheduler", SCHEDULER_USER, client=True)

    def apiserver_kubelet_client(self) -> CertPair:
        # system:masters is more than the kubelet API needs; fine for a throwaway lab, and the
        # system:kubelet-api-admin binding is created as well so that the group is not needed.
        return self.issue("apiserver-kubelet-client", KUBELET_CLIENT_USER, [MASTERS_GROUP],
                          client=True)

    def front_proxy_client(self) -> CertPair:
        # Only so that the apiserver publishes a requestheader CA: without one the
        # controller-manager and scheduler log an error every few seconds.
        return self.issue("front-proxy-client", FRONT_PROXY_USER, client=True)

    def node_client(self, node_name: str) -> CertPair:
        """The kubelet's client identity: what the Node authorizer and NodeRestriction key on."""
        return self.issue(f"node-{_safe(node_name)}", f"system:node:{node_name}", [NODES_GROUP],
                          client=True)

    def kubelet_serving(self, node_name: str, ips: Sequence[str] = (),
                        hostnames: Sequence[str] = ()) -> CertPair:
        """Serving cert for a kubelet: SANs are the addresses the apiserver dials. The node
        name is added as an IP SAN when it is an IP (the lab node is named 127.0.0.2)."""
        dns = list(hostnames)
        ips_all = list(ips)
        if _is_ip(node_name):
            ips_all.insert(0, node_name)
        else:
            dns.insert(0, node_name)
        return self.issue(f"kubelet-serving-{_safe(node_name)}", f"system:node:{node_name}",
                          [NODES_GROUP], server=True, dns=list(dict.fromkeys(dns)),
                          ips=list(dict.fromkeys(ips_all)))

    def service_account_keys(self) -> tuple[Path, Path]:
        """(private key, public key) used to sign and verify service-account tokens."""
        priv, pub = self.directory / "sa.key", self.directory / "sa.pub"
        if priv.exists() and pub.exists():
            return priv, pub
        key = _new_key()
        _write(priv, _key_pem(key), private=True)
        _write(pub, key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        return priv, pub

    def ensure_control_plane(self) -> None:
        """Everything the control plane itself needs (not the per-node certificates)."""
        self.ensure_ca()
        self.apiserver()
        self.admin()
        self.controller_manager()
        self.scheduler()
        self.apiserver_kubelet_client()
        self.front_proxy_client()
        self.service_account_keys()


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in name)


def kubeconfig_dict(server: str, ca_cert: Path, client: CertPair, user: str,
                    cluster: str = "numacert-lab") -> dict[str, object]:
    """A kubeconfig with the CA and client credentials embedded, so the file can be copied
    (into the guest, to a CI artifact) without the PEM files next to it."""
    import base64

    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server, "certificate-authority-data": b64(ca_cert)}}],
        "users": [{"name": user, "user": {
            "client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)}}],
        "contexts": [{"name": f"{user}@{cluster}", "context": {"cluster": cluster, "user": user}}],
        "current-context": f"{user}@{cluster}",
        "preferences": {},
    }


def write_kubeconfig(path: Path | str, server: str, ca_cert: Path, client: CertPair, user: str,
                     cluster: str = "numacert-lab") -> Path:
    """Write a kubeconfig (mode 0600: it holds a private key). `server` is e.g.
    HOST_SERVER for the host, GUEST_SERVER for a kubelet inside the qemu guest."""
    path = Path(path)
    data = yaml.safe_dump(kubeconfig_dict(server, ca_cert, client, user, cluster),
                          sort_keys=False).encode()
    _write(path, data, private=True)
    return path
