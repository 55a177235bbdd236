//! `Server`: builds a running enclave from a `Config` and a `Pipeline` — database pool and
//! migrations, executor threads, session arbiters, registry, HTTP listener — and runs it until
//! stopped. `main.rs` and the tests start enclave the same way.

use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use actix_web::{dev::ServerHandle, web};

use crate::agents::{
    actions::Actions, data::Data, goals_triage::GoalsTriage, optimizations_core::OptimizationsCore,
    reporting::Reporting, synthetic_data::SyntheticData, triage::Triage,
};
use crate::analysis::catalog::{Catalog, CatalogError};
use crate::auth::{self, Auth};
use crate::config::Config;
use crate::faults::{Faults, FaultsError};
use crate::llm::LlmProvider;
use crate::llm::openai::OpenAiCompatible;
use crate::metrics::Metrics;
use crate::runtime::cluster::mailroom::Mailroom;
use crate::runtime::housekeeper::{Housekeeper, StopSweeping};
use crate::runtime::pipeline::Pipeline;
use crate::runtime::registry::SessionRegistry;
use crate::runtime::revocations::Revocations;
use crate::runtime::run_slots::RunSlots;
use crate::runtime::session::SessionDeps;
use crate::runtime::shutdown::{Drain, ShutdownSignals};
use crate::store::{self, Backend, Db, StoreError};
use crate::web::AppState;
use crate::web::client_addr::ClientAddrPolicy;
use crate::web::edge::OriginPolicy;
use crate::web::gate::{ConnectionGate, GateLimits, open_file_limit};
use crate::web::listener;
use crate::web::upload_budget::{UploadBudget, UploadLimits};

mod dev_mode;
mod node;
use dev_mode::{binds_loopback_only, check_dev_mode};

/// enclave's own pipeline, assembled here rather than in `runtime/`, which names no concrete
/// agent.
impl Pipeline {
    /// enclave's own agents: every run starts with triage, which plans the rest.
    pub fn standard() -> Self {
        Self::new()
            .then(Triage)
            .also(GoalsTriage)
            .also(Data)
            .also(OptimizationsCore)
            .also(Actions)
            .also(SyntheticData)
            .also(Reporting)
    }
}

/// Why the server could not start; `enclave serve` prints it and exits.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Faults(#[from] FaultsError),
    #[error("cannot listen on {bind}: {source}")]
    Bind {
        bind: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(
        "no ENCLAVE_JWT_SECRET is set and {bind} is not a loopback address: dev mode would hand \
         a token for any user to anyone who can reach it; set ENCLAVE_JWT_SECRET, or bind to \
         127.0.0.1, or pass --dev to serve dev tokens there anyway"
    )]
    DevModeExposed { bind: String },
    #[error("http.trusted_proxies: {proxy:?} is not an address or CIDR block")]
    TrustedProxy { proxy: String },
    #[error("start-up was interrupted")]
    Interrupted,
    #[error("cannot start the cluster listener thread: {0}")]
    Listener(std::io::Error),
}

/// A built, listening enclave: what `enclave serve`, the tests and embedders start, ask for its
/// address and run until stopped.
pub struct Server {
    http: actix_web::dev::Server,
    /// This server's hold on the database (lock file or node lease), kept while it runs.
    ownership: store::ownership::Ownership,
    db: Db,
    /// Drained on SIGTERM/SIGINT before the HTTP server stops.
    registry: Addr<SessionRegistry>,
    /// The signals that start the drain, watched since before the listener was bound.
    signals: ShutdownSignals,
    /// How long runs may go on after a shutdown signal.
    grace: std::time::Duration,
    /// Renews this node's lease on the database every third of it.
    renewing: actix_web::rt::task::JoinHandle<()>,
    /// The background deletions, stopped before the lease is given up.
    housekeeper: Addr<Housekeeper>,
    addr: SocketAddr,
    faults: Arc<Faults>,
    arbiters: Vec<Arbiter>,
    /// No secret was configured, so tokens are signed with a random one.
    dev_secret: bool,
    dev_tokens: bool,
    backend: Backend,
}

/// Opens the database named by `url` and applies pending migrations; returns the pool and how
/// many migrations ran. Blocking: call it off the async arbiters.
pub fn open_and_migrate(config: &Config) -> Result<(store::Pool, usize), StoreError> {
    let backend = Backend::from_url(&config.database_url)?;
    let pool = store::open_pool(
        &backend,
        config.db_pool_size,
        config.db_timeout,
        config.sqlite_synchronous,
    )?;
    let ran = store::migrate(&mut *pool.get()?)?;
    Ok((pool, ran))
}

impl Server {
    /// Opens and migrates the database, starts the actors and binds the listener. Call inside
    /// a running actix system.
    pub async fn build(config: Config, pipeline: Pipeline) -> Result<Self, ServerError> {
        let signals = ShutdownSignals::watch();
        let backend = Backend::from_url(&config.database_url).map_err(StoreError::from)?;
        let bind = config.bind.clone();
        let loopback = web::block(move || binds_loopback_only(&bind))
            .await
            .map_err(|_| ServerError::Interrupted)?;
        check_dev_mode(&config, loopback)?;
        let faults = Arc::new(Faults::parse(&config.faults)?);
        let config = Arc::new(config);
        let opening = config.clone();
        let (pool, migrations) = web::block(move || open_and_migrate(&opening))
            .await
            .map_err(|_| ServerError::Interrupted)??;
        let catalog = match config.prices_path.clone() {
            Some(path) => web::block(move || Catalog::load(&path))
                .await
                .map_err(|_| ServerError::Interrupted)??,
            None => Catalog::builtin(),
        };
        log::info!("price catalog as of {}", catalog.as_of());
        let catalog = Arc::new(catalog);
        let metrics = Arc::new(Metrics::new());
        if migrations > 0 {
            log::info!("applied {migrations} migration(s) to {}", backend.display());
        }
        // The writers' connections (`open_writer_pool`), opened before the claim so that a
        // failure here leaves no lease behind.
        let writers = if backend.is_sqlite() {
            1
        } else {
            config.db_writer_threads.max(1)
        };
        let (opening, writing) = (config.clone(), backend.clone());
        let writer_pool = web::block(move || {
            store::open_writer_pool(
                &writing,
                writers as u32 + 1,
                opening.db_timeout,
                opening.sqlite_synchronous,
            )
        })
        .await
        .map_err(|_| ServerError::Interrupted)??;
        // One server per database: claimed before anything of it is touched.
        let (claiming, claim_backend, lease) = (pool.clone(), backend.clone(), config.node_lease);
        let ownership =
            web::block(move || store::ownership::claim(&claim_backend, &claiming, lease))
                .await
                .map_err(|_| ServerError::Interrupted)??;
        let node_id = ownership.node_id().to_owned();
        log::info!("node {node_id}");
        // Renewed from now on, however long the rest of start-up takes; a lapse is told to
        // the registry once it exists.
        let (lapsed, lapses) = tokio::sync::mpsc::unbounded_channel();
        let renewing = actix_web::rt::spawn(store::ownership::renew_lease(
            pool.clone(),
            node_id.clone(),
            config.node_lease,
            metrics.clone(),
            lapsed,
        ));
        let (recovering, own) = (pool.clone(), node_id.clone());
        let (interrupted, discarded) = web::block(move || {
            let conn = &mut *recovering.get()?;
            let interrupted = store::recovery::interrupt_leftover_runs(conn, &own)?;
            let discarded = store::bulk::discard_leftover_uploads(conn, &own)?;
            Ok::<_, StoreError>((interrupted, discarded))
        })
        .await
        .map_err(|_| ServerError::Interrupted)??;
        if discarded > 0 {
            log::warn!("{discarded} upload(s) left half-written by the last process: discarded");
        }
        if interrupted > 0 {
            log::warn!("{interrupted} run(s) left unfinished by the last process: run_interrupted");
        }
        let db = Db::start(
            pool,
            writer_pool,
            config.db_reader_threads,
            writers,
            faults.clone(),
            &node_id,
            metrics.clone(),
        )?;
        let arbiters: Vec<Arbiter> = (0..config.session_arbiter_count())
            .map(|_| Arbiter::new())
            .collect();
        let housekeeper = Housekeeper::new(db.clone(), &config).start();
        // Nodes on PostgreSQL: the post office exists before the registry, which hands it to
        // every session, and starts once the registry it delivers to does.
        let post_office = (!backend.is_sqlite()).then(actix::Context::<Mailroom>::new);
        let deps = SessionDeps {
            mailroom: post_office.as_ref().map(actix::Context::address),
            housekeeper: housekeeper.clone().recipient(),
            config: config.clone(),
            db: db.clone(),
            faults: faults.clone(),
            pipeline: Arc::new(pipeline),
            catalog: catalog.clone(),
            slots: RunSlots::new(config.max_running_total).start(),
            metrics: metrics.clone(),
            llm: config.llm_url.as_deref().map(|url| {
                log::info!(
                    "LLM: {} at {}",
                    config.llm_model,
                    store::connection::redact_password(url)
                );
                Arc::new(OpenAiCompatible::new(
                    url,
                    &config.llm_model,
                    config.llm_api_key.clone(),
                    config.llm_timeout,
                )) as Arc<dyn LlmProvider>
            }),
        };
        let registry =
            SessionRegistry::new(deps, arbiters.iter().map(Arbiter::handle).collect()).start();
        actix_web::rt::spawn(node::check_leases_when_lapsed(lapses, registry.clone()));
        if let Some(post_office) = post_office {
            node::open_post_office(post_office, &config, &node_id, &db, &registry)
                .map_err(ServerError::Listener)?;
        }
        let grace = config.shutdown_grace;
        let (auth, dev_secret) = match Auth::from_config(&config) {
            Some(auth) => (auth, false),
            None => (Auth::new(auth::random_secret().as_bytes()), true),
        };
        let dev_tokens = config.dev || dev_secret;
        let client_addrs = ClientAddrPolicy::new(&config.trusted_proxies, config.exempt_loopback)
            .map_err(|proxy| ServerError::TrustedProxy { proxy })?;
        let uploads = UploadBudget::new(
            UploadLimits {
                max_uploads: config.max_concurrent_uploads,
                max_bytes: config.max_upload_bytes_total,
            },
            metrics.uploads_in_flight.clone(),
        )
        .start();
        let revocations = Revocations::load(db.clone(), registry.clone(), config.revocation_check)
            .await?
            .start();
        let state_db = db.clone();
        let state = web::Data::new(AppState {
            config: config.clone(),
            auth: Arc::new(auth),
            db,
            registry: registry.clone(),
            catalog,
            metrics,
            faults: faults.clone(),
            dev_tokens,
            origins: OriginPolicy::new(&config.allowed_origins, dev_tokens),
            gate: ConnectionGate::new(GateLimits::from_config(&config, open_file_limit())).start(),
            client_addrs,
            uploads,
            revocations,
        });
        let (http, addr) = listener::start(&config, state).map_err(|source| ServerError::Bind {
            bind: config.bind.clone(),
            source,
        })?;
        let (announcing, address) = (node_id.clone(), addr.to_string());
        if let Err(e) = state_db
            .write_with(move |conn| store::ownership::announce(conn, &announcing, &address))
            .await
        {
            log::warn!("could not record this node's address: {e}");
        }
        Ok(Self {
            http,
            ownership,
            db: state_db,
            registry,
            signals,
            grace,
            renewing,
            housekeeper,
            addr,
            faults,
            arbiters,
            dev_secret,
            dev_tokens,
            backend,
        })
    }

    /// The address actually bound (port 0 becomes a real port), for the start-up banner and
    /// clients.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port actually bound, for callers that asked for port 0.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The fault-injection switches of this server (tests flip them at run time).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }

    /// The session registry: what SIGTERM drains (`runtime::shutdown`), for embedders and
    /// tests that drain without stopping the process.
    pub fn registry(&self) -> Addr<SessionRegistry> {
        self.registry.clone()
    }

    /// Stops the server from elsewhere.
    pub fn handle(&self) -> ServerHandle {
        self.http.handle()
    }

    /// Tokens are signed with a random secret (none configured).
    pub fn dev_secret(&self) -> bool {
        self.dev_secret
    }

    /// `POST /api/dev/token` is served.
    pub fn dev_tokens(&self) -> bool {
        self.dev_tokens
    }

    /// The database it runs on, which the start-up banner names (password redacted).
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Serves until stopped: by `handle().stop()`, or by SIGTERM/SIGINT, which first drains
    /// the sessions (`runtime::shutdown`). Then stops the session arbiters.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handle = self.http.handle();
        // The HTTP server's own task must keep running: it is what answers `pause`/`stop`.
        let mut http = actix_web::rt::spawn(self.http);
        let signal = Box::pin(self.signals.received());
        let joined = match futures_util::future::select(&mut http, signal).await {
            futures_util::future::Either::Left((joined, _)) => joined,
            futures_util::future::Either::Right(((), _)) => {
                log::info!("shutting down: draining runs for up to {:?}", self.grace);
                handle.pause().await;
                let _ = self.registry.send(Drain { grace: self.grace }).await;
                log::info!("sessions drained; stopping the HTTP server");
                handle.stop(true).await;
                http.await
            }
        };
        let result = joined.unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        self.renewing.abort();
        let _ = self.housekeeper.send(StopSweeping).await;
        // A chunk the housekeeper handed to a writer before it stopped commits before the lease
        // goes.
        self.db.settle_writers().await;
        let node_id = self.ownership.node_id().to_owned();
        if let Err(e) = self
            .db
            .write_with(move |conn| store::ownership::release(conn, &node_id))
            .await
        {
            log::warn!("could not release this node's lease: {e}");
        }
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        result
    }
}
