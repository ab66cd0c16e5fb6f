"""The TLS flags of the daemons (`--ssl_*`, each the flag form of a `LIBPROCESS_SSL_*`
variable; see `mezzo.security.tls`). Kept apart from it so that the flag tables (and `--help`)
do not import `ssl`."""

from __future__ import annotations

from mezzo.core.flags import Flag

__all__ = ["TLS_FLAGS"]

TLS_FLAGS = [
    Flag("ssl_enabled", None, "Serve HTTPS and speak HTTPS to others (env LIBPROCESS_SSL_ENABLED)"),
    Flag("ssl_cert_file", None, "TLS certificate, PEM (env LIBPROCESS_SSL_CERT_FILE)"),
    Flag("ssl_key_file", None, "TLS private key, PEM (env LIBPROCESS_SSL_KEY_FILE)"),
    Flag("ssl_ca_file", None, "CA certificates peers are checked against (env LIBPROCESS_SSL_CA_FILE)"),
    Flag("ssl_ca_dir", None, "directory of CA certificates (env LIBPROCESS_SSL_CA_DIR)"),
    Flag("ssl_verify_cert", None,
         "check the certificates clients present (env LIBPROCESS_SSL_VERIFY_CERT)"),
    Flag("ssl_require_cert", None,
         "refuse clients without a valid certificate (env LIBPROCESS_SSL_REQUIRE_CERT)"),
]
