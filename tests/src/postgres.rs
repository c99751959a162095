//! A PostgreSQL database per test.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Executor};

use crate::containers::{self, PostgresContainer};
use crate::names::unique_suffix;
use crate::{Held, clean_up_off_runtime, containers_allowed, env, off_runtime, patience, retry};

/// The variable naming an existing server (an admin URL: a role that may create databases).
pub const DATABASE_URL_VAR: &str = "CFLOGS_TEST_DATABASE_URL";

/// How to get a server, for the failure message.
const HOW_TO_START: &str = "these tests need a real PostgreSQL server. Run `bash scripts/test.sh` \
    (it starts the machine's PostgreSQL and sets CFLOGS_TEST_DATABASE_URL), or `source \
    scripts/services/postgres.sh` in your shell, or set \
    CFLOGS_TEST_DATABASE_URL=postgres://USER@127.0.0.1:5432/postgres (a role that may create \
    databases), or start a Docker engine (the harness then runs TimescaleDB in a container)";

/// A database created for one test and dropped when it ends (also when the test panics).
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    admin_url: String,
    url: String,
    container: Option<Held<PostgresContainer>>,
}

impl TestDatabase {
    /// Creates a fresh database on the test server (see the crate documentation for where the
    /// server comes from). Panics, saying how to start one, when there is none.
    pub async fn new() -> Self {
        let (admin_url, container) = match env(DATABASE_URL_VAR) {
            Some(url) => (url, None),
            None if containers_allowed() => {
                let container = off_runtime(containers::postgres);
                (container.admin_url.clone(), Some(Held::new(container)))
            }
            None => panic!(
                "{DATABASE_URL_VAR} is not set and no Docker engine is reachable: {HOW_TO_START}"
            ),
        };
        let admin = PgConnectOptions::from_str(&admin_url)
            .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is not a PostgreSQL URL: {e}"));
        let name = format!("cflogs_test_{}", unique_suffix());
        let mut conn = retry(patience(&container), async || admin.connect().await)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}. {HOW_TO_START}"));
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        let _ = conn.close().await;
        let url = database_url(&admin_url, &name);
        Self {
            name,
            admin_url,
            url,
            container,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL of this database (the admin URL's server and role).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The admin URL of the server (its maintenance database).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }
}

/// `admin_url` with its database replaced by `name`.
fn database_url(admin_url: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin_url)
        .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is not a URL: {e}"));
    url.set_path(&format!("/{name}"));
    url.to_string()
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        clean_up_off_runtime(async move {
            let Ok(admin) = PgConnectOptions::from_str(&admin_url) else {
                return;
            };
            if let Ok(mut conn) = admin.connect().await {
                let _ = conn
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
                let _ = conn.close().await;
            }
        });
        // The container (if this was its last user) goes after the database.
        drop(self.container.take());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_url_keeps_server_role_and_options() {
        assert_eq!(
            super::database_url(
                "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
                "cflogs_test_1"
            ),
            "postgres://postgres@127.0.0.1:5432/cflogs_test_1?sslmode=disable"
        );
    }
}
