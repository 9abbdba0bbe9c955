//! The storage URL: `?schema=NAME` split off, passwords kept out of every
//! message, and tokio-postgres' errors put into words.

use tokio_postgres::config::Host;

use super::schema::MAX_SCHEMA_NAME;

/// The schema used when the URL names none.
pub const DEFAULT_SCHEMA: &str = "public";

/// Split `?schema=NAME` off the URL; the rest goes to tokio-postgres.
pub(super) fn split_schema(url: &str) -> std::result::Result<(String, String), String> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')).filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("schema", value)) => {
                if schema.replace(value.to_string()).is_some() {
                    return Err("`schema` is given twice".into());
                }
            }
            None if pair == "schema" => return Err("`schema` needs a value, as in `?schema=knobs`".into()),
            _ => kept.push(pair),
        }
    }
    let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
    if schema.is_empty()
        || schema.len() > MAX_SCHEMA_NAME
        || !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!("schema `{schema}` must be 1..{MAX_SCHEMA_NAME} ASCII letters, digits or underscores"));
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, schema))
}

/// The URL with its password (in the user info or a `password=` parameter)
/// replaced by `***`.
pub(super) fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match (head.find("://"), head.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            let user_info = &head[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _password)) => format!("{}{user}:***{}", &head[..scheme + 3], &head[at..]),
                None => head.to_string(),
            }
        }
        _ => head.to_string(),
    };
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{out}?{}", pairs.join("&"));
    }
    out
}

/// `PostgreSQL user@host:port/db (schema `s`)`: what messages name.
pub(super) fn describe_target(config: &tokio_postgres::Config, schema: &str) -> String {
    let user = config.get_user().unwrap_or("(this OS user)");
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            match host {
                Host::Tcp(name) => format!("{name}:{port}"),
                #[cfg(unix)]
                Host::Unix(dir) => format!("{}:{port}", dir.display()),
            }
        })
        .collect();
    let hosts = if hosts.is_empty() { "(no host)".to_string() } else { hosts.join(",") };
    let db = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL {user}@{hosts}/{db} (schema `{schema}`)")
}

/// tokio-postgres' error with its causes (its `Display` shows only the kind).
pub(super) fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            s.push_str(&format!("; {detail}"));
        }
        if let Some(hint) = db.hint() {
            s.push_str(&format!("; hint: {hint}"));
        }
        return s;
    }
    let mut s = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parameter_is_split_off_and_checked() {
        let (rest, schema) = split_schema("postgres://u@h:5/db?schema=knobs_1&sslmode=disable").unwrap();
        assert_eq!((rest.as_str(), schema.as_str()), ("postgres://u@h:5/db?sslmode=disable", "knobs_1"));
        let (rest, schema) = split_schema("postgres://u@h/db").unwrap();
        assert_eq!((rest.as_str(), schema.as_str()), ("postgres://u@h/db", "public"));
        let (rest, _) = split_schema("postgres://u@h/db?schema=a").unwrap();
        assert_eq!(rest, "postgres://u@h/db");
        for bad in ["?schema=", "?schema=a;drop", "?schema=\"x\"", "?schema=a&schema=b", "?schema"] {
            assert!(split_schema(&format!("postgres://u@h/db{bad}")).is_err(), "{bad}");
        }
        assert!(split_schema(&format!("postgres://h/db?schema={}", "s".repeat(64))).is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:s3cret@h:5432/db?schema=a"), "postgres://u:***@h:5432/db?schema=a");
        assert_eq!(redact("postgres://u:p/a@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db?password=s3cret&x=1"), "postgres://u@h/db?password=***&x=1");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn target_names_user_host_port_db_and_schema_only() {
        let config: tokio_postgres::Config = "postgres://alice:s3cret@db.example:6543/knobs".parse().unwrap();
        let t = describe_target(&config, "k1");
        assert_eq!(t, "PostgreSQL alice@db.example:6543/knobs (schema `k1`)");
    }
}
