//! A SASL_SSL listener for the test broker, beside its PLAINTEXT one.
//!
//! [`BrokerOptions::sasl_ssl`] asks [`KafkaBroker::start_with`] for it. Before
//! the broker starts, the kit makes in the broker's directory (`tls/`), with
//! the `openssl` command:
//!
//! - a CA (`ca.pem`), which signs the broker's certificate (subject
//!   alternative names `IP:127.0.0.1` and `DNS:localhost`, so that clients
//!   verify the host name as they do by default);
//! - the broker's key and certificate chain in a PKCS12 keystore;
//! - a second CA (`untrusted-ca.pem`) that signed nothing: a client that
//!   trusts only it must refuse the broker.
//!
//! The listener accepts SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN. Each user's
//! SCRAM credentials (both hashes) are added when the KRaft log directory is
//! formatted (the storage tool's `--add-scram`); the PLAIN users are listed
//! in the listener's JAAS configuration. The controller, the inter-broker
//! traffic and the kit's own clients (topic creation, reading back) stay on
//! PLAINTEXT. Everything listens on 127.0.0.1 only.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use levee_testkit::{BrokerOptions, KafkaBroker, SaslSslOptions};
//!
//! let broker = KafkaBroker::start_with(
//!     BrokerOptions::default().sasl_ssl(SaslSslOptions::default().user("levee", "s3cret")),
//! )?;
//! let listener = broker.sasl_ssl().expect("asked for");
//! let config = listener.client_config("SCRAM-SHA-512", "levee", "s3cret");
//! # let _ = config; Ok(()) }
//! ```

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::{BrokerOptions, KafkaBroker};

/// The listener's name (and security protocol) in `server.properties`.
pub const LISTENER: &str = "SASL_SSL";

/// The SASL mechanisms the listener accepts.
pub const MECHANISMS: [&str; 3] = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"];

/// The SCRAM mechanisms, whose credentials are added at format time.
const SCRAM_MECHANISMS: [&str; 2] = ["SCRAM-SHA-256", "SCRAM-SHA-512"];

/// How long the certificates are valid.
const CERT_DAYS: &str = "30";

/// The users of a SASL_SSL listener, for [`BrokerOptions::sasl_ssl`].
#[derive(Debug, Clone, Default)]
pub struct SaslSslOptions {
    users: Vec<(String, String)>,
}

impl SaslSslOptions {
    /// Adds a user (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN). Names and
    /// passwords are ASCII letters, digits, `-`, `_` and `.` (they go into
    /// the storage tool's arguments and a JAAS configuration unquoted).
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }
}

impl BrokerOptions {
    /// Adds a SASL_SSL listener with these users (see [`crate::secure`]).
    pub fn sasl_ssl(mut self, options: SaslSslOptions) -> Self {
        self.sasl_ssl = Some(options);
        self
    }
}

/// A broker's SASL_SSL listener: its port, certificates and users.
#[derive(Debug, Clone)]
pub struct SaslSslListener {
    port: u16,
    dir: PathBuf,
    users: Vec<(String, String)>,
    keystore_password: String,
}

impl KafkaBroker {
    /// The SASL_SSL listener, if the broker was started with one.
    pub fn sasl_ssl(&self) -> Option<&SaslSslListener> {
        self.sasl_ssl.as_ref()
    }
}

impl SaslSslListener {
    /// Makes the certificates and the keystore in `broker_dir/tls` for a
    /// listener on `port`.
    pub(crate) fn prepare(broker_dir: &Path, options: &SaslSslOptions, port: u16) -> Result<Self> {
        if options.users.is_empty() {
            bail!("a SASL_SSL listener needs at least one user");
        }
        for (name, password) in &options.users {
            for (what, value) in [("name", name), ("password", password)] {
                let plain = !value.is_empty()
                    && value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
                if !plain {
                    bail!("SASL user {what} {value:?}: use ASCII letters, digits, '-', '_', '.'");
                }
            }
        }
        let dir = broker_dir.join("tls");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let listener = SaslSslListener {
            port,
            dir,
            users: options.users.clone(),
            keystore_password: format!("ks-{}", crate::unique_suffix()),
        };
        listener.make_certificates()?;
        Ok(listener)
    }

    /// The two CAs, the broker's certificate signed by the first, and its
    /// PKCS12 keystore.
    fn make_certificates(&self) -> Result<()> {
        let dir = &self.dir;
        for (name, cn) in [
            ("ca", "levee test CA"),
            ("untrusted-ca", "levee test CA nobody trusts"),
        ] {
            let config = dir.join(format!("{name}.cnf"));
            std::fs::write(&config, ca_config(cn)).context("writing a CA's openssl config")?;
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-newkey",
                    "rsa:2048",
                    "-nodes",
                    "-sha256",
                    "-days",
                    CERT_DAYS,
                    "-config",
                    &path_str(&config)?,
                    "-keyout",
                    &format!("{name}.key"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            )?;
        }
        std::fs::write(dir.join("broker.cnf"), BROKER_CONFIG)
            .context("writing the broker's openssl config")?;
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-config",
                "broker.cnf",
                "-keyout",
                "broker.key",
                "-out",
                "broker.csr",
            ],
        )?;
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "broker.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-sha256",
                "-days",
                CERT_DAYS,
                "-extfile",
                "broker.cnf",
                "-extensions",
                "v3_broker",
                "-out",
                "broker.pem",
            ],
        )?;
        openssl(
            dir,
            &[
                "pkcs12",
                "-export",
                "-in",
                "broker.pem",
                "-inkey",
                "broker.key",
                "-certfile",
                "ca.pem",
                "-name",
                "broker",
                "-passout",
                &format!("pass:{}", self.keystore_password),
                "-out",
                "broker.p12",
            ],
        )?;
        Ok(())
    }

    /// Adds the listener to the kit's `server.properties` entries.
    pub(crate) fn apply(&self, props: &mut Vec<(String, String)>) {
        let append = |props: &mut Vec<(String, String)>, key: &str, item: String| match props
            .iter_mut()
            .find(|(k, _)| k == key)
        {
            Some((_, value)) if !value.is_empty() => {
                value.push(',');
                value.push_str(&item);
            }
            Some((_, value)) => *value = item,
            None => props.push((key.to_owned(), item)),
        };
        let address = format!("{LISTENER}://127.0.0.1:{}", self.port);
        append(props, "listeners", address.clone());
        append(props, "advertised.listeners", address);
        append(
            props,
            "listener.security.protocol.map",
            format!("{LISTENER}:{LISTENER}"),
        );
        let prefix = format!("listener.name.{}", LISTENER.to_ascii_lowercase());
        let mut plain_users = String::new();
        for (name, password) in &self.users {
            let _ = write!(plain_users, " user_{name}=\"{password}\"");
        }
        let keystore = self.dir.join("broker.p12").display().to_string();
        let entries = [
            ("sasl.enabled.mechanisms".to_owned(), MECHANISMS.join(",")),
            (
                format!("{prefix}.scram-sha-512.sasl.jaas.config"),
                "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_owned(),
            ),
            (
                format!("{prefix}.scram-sha-256.sasl.jaas.config"),
                "org.apache.kafka.common.security.scram.ScramLoginModule required;".to_owned(),
            ),
            (
                format!("{prefix}.plain.sasl.jaas.config"),
                format!(
                    "org.apache.kafka.common.security.plain.PlainLoginModule required{plain_users};"
                ),
            ),
            (format!("{prefix}.ssl.keystore.type"), "PKCS12".to_owned()),
            (format!("{prefix}.ssl.keystore.location"), keystore),
            (
                format!("{prefix}.ssl.keystore.password"),
                self.keystore_password.clone(),
            ),
            (
                format!("{prefix}.ssl.key.password"),
                self.keystore_password.clone(),
            ),
        ];
        for (key, value) in entries {
            props.retain(|(k, _)| *k != key);
            props.push((key, value));
        }
    }

    /// The storage tool's `--add-scram` arguments: each user's credentials
    /// for both SCRAM mechanisms.
    pub(crate) fn format_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for (name, password) in &self.users {
            for mechanism in SCRAM_MECHANISMS {
                args.push("--add-scram".to_owned());
                args.push(format!("{mechanism}=[name={name},password={password}]"));
            }
        }
        args
    }

    /// The listener's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:<port>`, for `bootstrap.servers`.
    pub fn bootstrap_servers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA that signed the broker's certificate (PEM), for `ssl.ca.location`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A CA that did not sign the broker's certificate (PEM): a client that
    /// trusts only it must refuse the broker.
    pub fn untrusted_ca_file(&self) -> PathBuf {
        self.dir.join("untrusted-ca.pem")
    }

    /// The users: (name, password).
    pub fn users(&self) -> &[(String, String)] {
        &self.users
    }

    /// The client properties for this listener (without `bootstrap.servers`):
    /// `security.protocol`, `sasl.mechanisms`, `sasl.username`,
    /// `sasl.password` and `ssl.ca.location` (the CA that signed the broker).
    pub fn client_properties(
        &self,
        mechanism: &str,
        username: &str,
        password: &str,
    ) -> Vec<(&'static str, String)> {
        vec![
            ("security.protocol", "SASL_SSL".to_owned()),
            ("sasl.mechanisms", mechanism.to_owned()),
            ("sasl.username", username.to_owned()),
            ("sasl.password", password.to_owned()),
            ("ssl.ca.location", self.ca_file().display().to_string()),
        ]
    }

    /// A client configuration for this listener: `bootstrap.servers` and
    /// [`SaslSslListener::client_properties`].
    pub fn client_config(
        &self,
        mechanism: &str,
        username: &str,
        password: &str,
    ) -> rdkafka::ClientConfig {
        let mut config = crate::clients::client_config(&self.bootstrap_servers());
        for (key, value) in self.client_properties(mechanism, username, password) {
            config.set(key, value);
        }
        config
    }
}

/// An openssl configuration for a self-signed CA with common name `cn`.
fn ca_config(cn: &str) -> String {
    format!(
        "[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca

[dn]
CN = {cn}

[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"
    )
}

/// The broker's certificate request and the extensions its CA signs in.
const BROKER_CONFIG: &str = "[req]
distinguished_name = dn
prompt = no

[dn]
CN = 127.0.0.1

[v3_broker]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
";

/// Runs `openssl <args>` in `dir`; fails with its output.
fn openssl(dir: &Path, args: &[&str]) -> Result<()> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .context("running `openssl` (install the openssl package)")?;
    if !output.status.success() {
        bail!(
            "`openssl {}` failed with {}:\n{}{}",
            args.first().copied().unwrap_or_default(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn path_str(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn listener() -> SaslSslListener {
        SaslSslListener {
            port: 9999,
            dir: PathBuf::from("/tmp/x/tls"),
            users: vec![
                ("levee".into(), "pw1".into()),
                ("other".into(), "pw2".into()),
            ],
            keystore_password: "ks".into(),
        }
    }

    #[test]
    fn adds_the_listener_to_the_kit_properties() {
        let mut props: Vec<(String, String)> = vec![
            ("listeners".into(), "PLAINTEXT://127.0.0.1:1".into()),
            (
                "advertised.listeners".into(),
                "PLAINTEXT://127.0.0.1:1".into(),
            ),
            (
                "listener.security.protocol.map".into(),
                "PLAINTEXT:PLAINTEXT".into(),
            ),
        ];
        listener().apply(&mut props);
        let get = |k: &str| {
            props
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap()
        };
        assert_eq!(
            get("listeners"),
            "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:9999"
        );
        assert_eq!(
            get("advertised.listeners"),
            "PLAINTEXT://127.0.0.1:1,SASL_SSL://127.0.0.1:9999"
        );
        assert_eq!(
            get("listener.security.protocol.map"),
            "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL"
        );
        assert_eq!(
            get("listener.name.sasl_ssl.plain.sasl.jaas.config"),
            "org.apache.kafka.common.security.plain.PlainLoginModule required \
             user_levee=\"pw1\" user_other=\"pw2\";"
        );
        assert_eq!(
            get("listener.name.sasl_ssl.ssl.keystore.location"),
            "/tmp/x/tls/broker.p12"
        );
    }

    #[test]
    fn adds_scram_credentials_for_every_user_and_hash() {
        assert_eq!(
            listener().format_args(),
            [
                "--add-scram",
                "SCRAM-SHA-256=[name=levee,password=pw1]",
                "--add-scram",
                "SCRAM-SHA-512=[name=levee,password=pw1]",
                "--add-scram",
                "SCRAM-SHA-256=[name=other,password=pw2]",
                "--add-scram",
                "SCRAM-SHA-512=[name=other,password=pw2]",
            ]
        );
    }

    #[test]
    fn refuses_names_that_would_need_quoting() {
        let dir = tempfile::tempdir().unwrap();
        for (name, password) in [("a,b", "pw"), ("levee", "p\"w"), ("", "pw"), ("x", "a]b")] {
            let options = SaslSslOptions::default().user(name, password);
            let err = SaslSslListener::prepare(dir.path(), &options, 1).unwrap_err();
            assert!(err.to_string().contains("SASL user"), "{err}");
        }
        assert!(SaslSslListener::prepare(dir.path(), &SaslSslOptions::default(), 1).is_err());
    }

    #[test]
    fn makes_a_ca_that_signs_the_broker_and_one_that_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let options = SaslSslOptions::default().user("levee", "pw");
        let listener = SaslSslListener::prepare(dir.path(), &options, 1).unwrap();
        let verify = |ca: &Path| {
            Command::new("openssl")
                .args(["verify", "-CAfile"])
                .arg(ca)
                .arg(listener.dir.join("broker.pem"))
                .output()
                .unwrap()
                .status
                .success()
        };
        assert!(verify(&listener.ca_file()));
        assert!(!verify(&listener.untrusted_ca_file()));
        let text = Command::new("openssl")
            .args(["x509", "-noout", "-text", "-in"])
            .arg(listener.dir.join("broker.pem"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&text.stdout);
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
        assert!(listener.dir.join("broker.p12").is_file());
    }
}
