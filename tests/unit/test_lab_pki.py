"""numacert.lab.pki: subjects, SANs, usages, chaining to the CA, reuse, kubeconfigs."""

from __future__ import annotations

import base64
import ipaddress
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from numacert.lab import pki as P


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> P.PKI:
    p = P.PKI(tmp_path_factory.mktemp("pki"))
    p.ensure_control_plane()
    return p


def _cn(cert: x509.Certificate) -> str:
    return str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def _orgs(cert: x509.Certificate) -> list[str]:
    return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]


def _ekus(cert: x509.Certificate) -> set[x509.ObjectIdentifier]:
    return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def _sans(cert: x509.Certificate) -> tuple[set[str], set[str]]:
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return (set(san.get_values_for_type(x509.DNSName)),
            {str(i) for i in san.get_values_for_type(x509.IPAddress)})


def _chains(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, Exception):
        return False
    return True


def _key_matches(pair: P.CertPair) -> bool:
    key = serialization.load_pem_private_key(pair.key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    pub = pair.load_cert().public_key()
    return key.public_key().public_numbers() == pub.public_numbers()  # type: ignore[union-attr]


def test_ca_is_a_ca(lab_pki: P.PKI) -> None:
    ca = lab_pki.ca.load_cert()
    bc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca
    ku = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.key_cert_sign and ku.crl_sign
    assert ca.subject == ca.issuer
    ca.verify_directly_issued_by(ca)
    assert stat.S_IMODE(lab_pki.ca.key.stat().st_mode) == 0o600


def test_apiserver_serving_cert(lab_pki: P.PKI) -> None:
    pair = lab_pki.apiserver()
    cert = pair.load_cert()
    dns, ips = _sans(cert)
    assert {"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"} <= dns
    assert {"127.0.0.1", "10.0.2.2", "10.96.0.1"} <= ips
    assert _ekus(cert) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert _chains(cert, lab_pki.ca.load_cert())
    assert _key_matches(pair)


@pytest.mark.parametrize(
    ("method", "cn", "orgs"),
    [
        ("admin", "kubernetes-admin", ["system:masters"]),
        ("controller_manager", "system:kube-controller-manager", []),
        ("scheduler", "system:kube-scheduler", []),
        ("apiserver_kubelet_client", "kube-apiserver-kubelet-client", ["system:masters"]),
        ("front_proxy_client", "front-proxy-client", []),
    ],
)
def test_client_certs(lab_pki: P.PKI, method: str, cn: str, orgs: list[str]) -> None:
    pair = getattr(lab_pki, method)()
    cert = pair.load_cert()
    assert _cn(cert) == cn
    assert _orgs(cert) == orgs
    assert _ekus(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _chains(cert, lab_pki.ca.load_cert())
    assert _key_matches(pair)


def test_node_client_cert_for_ip_named_node(lab_pki: P.PKI) -> None:
    pair = lab_pki.node_client("127.0.0.2")
    cert = pair.load_cert()
    assert _cn(cert) == "system:node:127.0.0.2"
    assert _orgs(cert) == ["system:nodes"]
    assert _ekus(cert) == {ExtendedKeyUsageOID.CLIENT_AUTH}
    assert _chains(cert, lab_pki.ca.load_cert())
    assert pair.cert.name == "node-127.0.0.2.crt"


def test_kubelet_serving_cert(lab_pki: P.PKI) -> None:
    pair = lab_pki.kubelet_serving("127.0.0.2", ips=["10.0.2.15"], hostnames=["numalab"])
    cert = pair.load_cert()
    dns, ips = _sans(cert)
    assert ips == {"127.0.0.2", "10.0.2.15"}  # the node name is an IP: an IP SAN
    assert dns == {"numalab"}
    assert _ekus(cert) == {ExtendedKeyUsageOID.SERVER_AUTH}
    assert _chains(cert, lab_pki.ca.load_cert())
    named = lab_pki.kubelet_serving("worker-1").load_cert()
    assert _sans(named)[0] == {"worker-1"}


def test_service_account_keys(lab_pki: P.PKI) -> None:
    priv, pub = lab_pki.service_account_keys()
    key = serialization.load_pem_private_key(priv.read_bytes(), None)
    public = serialization.load_pem_public_key(pub.read_bytes())
    assert key.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600


def test_reuse_and_reissue(tmp_path: Path) -> None:
    p = P.PKI(tmp_path)
    first = p.apiserver().cert.read_bytes()
    assert p.apiserver().cert.read_bytes() == first  # same subject and SANs: kept
    changed = p.apiserver(extra_ips=["127.0.0.9"]).load_cert()
    assert "127.0.0.9" in _sans(changed)[1]  # different SANs: re-issued
    # A second PKI object on the same directory keeps the CA.
    ca_before = p.ca.cert.read_bytes()
    P.PKI(tmp_path).ensure_ca()
    assert p.ca.cert.read_bytes() == ca_before


def test_other_service_cidr(tmp_path: Path) -> None:
    assert P.first_service_ip("10.0.0.0/24") == "10.0.0.1"
    cert = P.PKI(tmp_path, service_cidr="10.0.0.0/24").apiserver().load_cert()
    assert "10.0.0.1" in _sans(cert)[1]


def test_kubeconfig(lab_pki: P.PKI, tmp_path: Path) -> None:
    path = P.write_kubeconfig(tmp_path / "node.kubeconfig", P.GUEST_SERVER, lab_pki.ca.cert,
                              lab_pki.node_client("127.0.0.2"), "system:node:127.0.0.2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    kc = yaml.safe_load(path.read_text())
    cluster = kc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://10.0.2.2:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]) == lab_pki.ca.cert.read_bytes()
    user = kc["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert _cn(cert) == "system:node:127.0.0.2"
    assert kc["current-context"] == kc["contexts"][0]["name"]
    assert ipaddress.ip_address("10.0.2.2")  # the guest-side address is a plain IP
