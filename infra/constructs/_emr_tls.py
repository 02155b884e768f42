"""The PEM certificate zip of the EMR-on-EC2 security configuration's in-transit encryption.

EMR on EC2 encrypts traffic between nodes (Spark RPC and block transfer, shuffle, HDFS, the web UIs) only
with artifacts the security configuration names: a zip of PEM files in S3 (``privateKey.pem``,
``certificateChain.pem``, ``trustedCertificates.pem``) or a custom Java provider. EMR 7.12 offers no
certificate-free option, so the app makes the zip itself, with no manual step: a self-signed certificate for
the hosts EMR names its nodes (``ip-....ec2.internal`` in us-east-1, ``ip-....REGION.compute.internal``
elsewhere: one wildcard per region, the stack being region-agnostic), trusted by itself (the trusted file).

The key is generated once per checkout and kept in ``.cdk-cache/emr-tls/`` (git-ignored, like the other
built assets), so synths stay reproducible and deploys do not replace the security configuration each
time; delete that folder to rotate it. It reaches AWS as a CDK file asset (the bootstrap's private,
encrypted assets bucket) that only the cluster nodes' role may read besides the deploying roles.
"""

from __future__ import annotations

import datetime
import io
import os
import zipfile
from pathlib import Path

from infra.build import CACHE

TLS_DIR = CACHE / "emr-tls"
ZIP_NAME = "emr-tls.zip"
VALID_DAYS = 3650
ORGANIZATION = "predictd EMR on EC2 (self-signed, in-cluster traffic only)"


def node_host_patterns() -> list[str]:
    """The wildcard DNS names EMR's nodes have in every region of the aws partition."""
    import botocore.session

    regions = botocore.session.get_session().get_available_regions("ec2")
    return ["*.ec2.internal", *(f"*.{region}.compute.internal" for region in regions if region != "us-east-1")]


def _certificate_zip() -> bytes:
    """A new key and self-signed certificate, zipped under the file names EMR expects."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "*.ec2.internal"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION)])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                   .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
                   .add_extension(x509.SubjectAlternativeName([x509.DNSName(host) for host in node_host_patterns()]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    certificate_pem = certificate.public_bytes(serialization.Encoding.PEM)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file_name, content in (("privateKey.pem", key_pem), ("certificateChain.pem", certificate_pem),
                                   ("trustedCertificates.pem", certificate_pem)):
            info = zipfile.ZipInfo(file_name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o600 << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def certificate_zip(folder: Path = TLS_DIR) -> Path:
    """The cached certificate zip, made on first use (written under a temporary name, then renamed)."""
    path = folder / ZIP_NAME
    if not path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{ZIP_NAME}.{os.getpid()}"
        partial.write_bytes(_certificate_zip())
        partial.chmod(0o600)
        partial.replace(path)
    return path
