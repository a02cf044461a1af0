//! `ldap2ftrack listen`: a long-running service that offers the LDAP sync in ftrack's Actions
//! menu ([`actions`]), so an administrator can preview and apply it from ftrack instead of a
//! shell on the sync host.
//!
//! It holds one event hub connection (reconnected, subscriptions re-sent, by the hub client)
//! and answers one launch at a time; a preview plans as `plan` does, an apply runs as `apply`
//! does, under the same run lock, so a scheduled run and a click never overlap.

pub mod actions;

use crate::config::{Config, FtrackServer};
use crate::failure::Failure;
use crate::ftrack::hub::{Event, EventHub, HubError, HubSettings};
use crate::ftrack::{Connection, Session};
use crate::run;
use serde_json::{json, Value};
use std::time::Duration;

/// Runs the service until SIGTERM or SIGINT.
pub fn listen(config: &Config) -> Result<(), Failure> {
    if matches!(
        config.ftrack.server_url,
        Some(FtrackServer::Emulator { .. })
    ) {
        return Err(Failure::Usage(
            "`listen` serves the Actions menu of an ftrack server: set ftrack.server_url to \
             the server (the bundled emulator has no web UI to click in)"
                .to_string(),
        ));
    }
    run::serve_many_runs();
    let rt = run::runtime()?;
    rt.block_on(serve(config))
}

async fn serve(config: &Config) -> Result<(), Failure> {
    let connection = Connection::open(&config.ftrack, &|k| std::env::var(k).ok())
        .await
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let session = &connection.session;
    let hub = connect(session).await?;
    let subscriber = json!({"applicationId": "ldap2ftrack"});
    let hub_error = |e: HubError| Failure::Runtime(e.to_string());
    let mut discovers = hub
        .subscribe("topic=ftrack.action.discover", subscriber.clone())
        .map_err(hub_error)?;
    let launch = format!(
        "topic=ftrack.action.launch and (data.actionIdentifier={} or data.actionIdentifier={})",
        actions::PREVIEW,
        actions::APPLY
    );
    let mut launches = hub
        .subscribe(&launch, subscriber.clone())
        .map_err(hub_error)?;
    tracing::info!(
        server = session.server_url(),
        "listening for ftrack actions ({} and {})",
        actions::PREVIEW,
        actions::APPLY
    );
    let mut stop = std::pin::pin!(shutdown());
    loop {
        tokio::select! {
            Some(event) = discovers.recv() => discover(&hub, session, &subscriber, &event).await,
            Some(event) = launches.recv() => launched(&hub, session, config, &subscriber, &event).await,
            () = &mut stop => break,
        }
    }
    tracing::info!("stopping: closing the event hub connection");
    hub.close().await;
    Ok(())
}

/// The first connection: a service may start before the server answers, so it waits and
/// retries; refused credentials are a configuration error.
async fn connect(session: &Session) -> Result<EventHub, Failure> {
    let mut delay = Duration::from_secs(1);
    loop {
        match EventHub::connect(session, HubSettings::default()).await {
            Ok(hub) => return Ok(hub),
            Err(HubError::Refused(why)) => return Err(Failure::Usage(why)),
            Err(e) => {
                tracing::warn!("{e}; trying again in {} s", delay.as_secs());
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
}

/// SIGTERM (systemd stopping the unit) or SIGINT.
pub(crate) async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Who asked, when they hold the Administrator role; `None` (logged) otherwise.
async fn administrator<'e>(session: &Session, event: &'e Event, what: &str) -> Option<&'e str> {
    let Some(username) = event.username() else {
        tracing::warn!("ignoring {what} without a user in its source");
        return None;
    };
    match actions::is_administrator(session, username).await {
        Ok(true) => Some(username),
        Ok(false) => {
            tracing::info!(
                user = username,
                "{what} by a user without the Administrator role: not offered"
            );
            None
        }
        Err(why) => {
            tracing::warn!(user = username, "{what}: {why}");
            None
        }
    }
}

async fn discover(hub: &EventHub, session: &Session, subscriber: &Value, event: &Event) {
    if administrator(session, event, "an actions discovery")
        .await
        .is_some()
    {
        reply(hub, event, subscriber, actions::items()).await;
    }
}

async fn launched(
    hub: &EventHub,
    session: &Session,
    config: &Config,
    subscriber: &Value,
    event: &Event,
) {
    let action = event.data["actionIdentifier"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let who = event.username().unwrap_or("(nobody)").to_string();
    tracing::info!(
        user = who.as_str(),
        action = action.as_str(),
        "action launched"
    );
    let Some(username) = administrator(session, event, "an action launch").await else {
        let refusal = json!({
            "success": false,
            "message": format!(
                "Only ftrack administrators may run the LDAP sync ({who} does not hold the {} role); nothing was run",
                actions::ADMINISTRATOR_ROLE
            ),
        });
        reply(hub, event, subscriber, refusal).await;
        return;
    };
    let answer = match action.as_str() {
        actions::PREVIEW => match off_thread(config, actions::preview).await {
            Ok(preview) => {
                let job = match actions::plan_job(session, username, &preview).await {
                    Ok(id) => Some(id),
                    Err(why) => {
                        tracing::warn!("the preview's job was not created: {why}");
                        None
                    }
                };
                actions::preview_reply(&preview, job.as_deref())
            }
            Err(failure) => failed("LDAP sync preview failed", &failure),
        },
        actions::APPLY if !actions::submitted(event) => {
            match off_thread(config, actions::preview).await {
                Ok(preview) => actions::confirmation_form(&preview),
                Err(failure) => failed("LDAP sync preview failed", &failure),
            }
        }
        actions::APPLY => match actions::confirmed(event) {
            Some(binding) => {
                tracing::info!(user = username, "apply confirmed");
                let config = config.clone();
                let (done, result) = tokio::sync::oneshot::channel();
                std::thread::spawn(move || {
                    let _ = done.send(actions::apply_confirmed(&config, binding));
                });
                result.await.unwrap_or_else(|_| {
                    json!({"success": false, "message": "the apply stopped unexpectedly; see the service's log"})
                })
            }
            None => json!({"success": false, "message": "Not confirmed: nothing was applied."}),
        },
        _ => return,
    };
    reply(hub, event, subscriber, answer).await;
}

fn failed(what: &str, failure: &Failure) -> Value {
    json!({"success": false, "message": format!("{what}: {failure}")})
}

/// Runs blocking run code (it makes its own runtime) on a thread of its own.
async fn off_thread<T: Send + 'static>(
    config: &Config,
    work: fn(&Config) -> Result<T, Failure>,
) -> Result<T, Failure> {
    let config = config.clone();
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = done.send(work(&config));
    });
    result.await.unwrap_or_else(|_| {
        Err(Failure::Runtime(
            "the work stopped unexpectedly".to_string(),
        ))
    })
}

async fn reply(hub: &EventHub, event: &Event, subscriber: &Value, data: Value) {
    if let Err(e) = hub.reply(event, subscriber, data).await {
        tracing::warn!("the reply to {} was not delivered: {e}", event.topic);
    }
}
