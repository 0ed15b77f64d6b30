//! Test certificates, made with the `openssl` command: a CA, a server certificate for
//! localhost/127.0.0.1 and a client certificate (the Flight TLS and follower tests).

use std::process::Command;

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, made
/// with the `openssl` command (PEM files in `dir`: ca.pem, server.pem, server.key,
/// client.pem, client.key). `None` (and the test skips, saying why) without openssl.
pub fn make_certs(dir: &std::path::Path) -> Option<()> {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(())
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ringfeed test CA",
        ],
    ]
    .concat())?;
    for (who, ext) in [
        (
            "server",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        std::fs::write(dir.join(format!("{who}.ext")), ext).unwrap();
        let (key, csr, pem, e) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={who}"),
            ],
        ]
        .concat())?;
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &e,
        ])?;
    }
    Some(())
}

/// The certificates in a new temporary directory, or `None` when the test must skip
/// (it says why): the `openssl` command is missing or failed.
pub fn test_certs() -> Option<tempfile::TempDir> {
    let certs = tempfile::tempdir().unwrap();
    if make_certs(certs.path()).is_some() {
        Some(certs)
    } else {
        eprintln!(
            "skipped: the openssl command is missing or failed (it makes the test's certificates)"
        );
        None
    }
}
