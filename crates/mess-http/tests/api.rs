//! In-process tests of every route and error path, on an in-memory storage.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::{test, web};
use async_trait::async_trait;
use mess_core::ports::{NoNotifier, StorageKind};
use mess_core::{Event, ExchangeId, Loaded, Member, OsEntropy, Storage, StorageError, SystemClock};
use mess_http::app::create_app;
use mess_http::{AppState, HttpConfig, Hub};
use serde_json::{Value, json};

/// Storage in memory, with a switch that makes every write fail (an outage), and a hold
/// that keeps appends waiting until the test lets them through.
#[derive(Default)]
struct MemStorage {
    events: Mutex<Vec<Event>>,
    members: Mutex<HashMap<String, Member>>,
    answers: Mutex<HashMap<(ExchangeId, String), Vec<u8>>>,
    blobs: Mutex<HashMap<(ExchangeId, String), Vec<u8>>>,
    down: AtomicBool,
    /// Appends wait for a permit while this is on.
    hold: AtomicBool,
    permits: Permits,
    /// Appends begun (counted before waiting).
    appends_begun: AtomicUsize,
    /// The next append to pass the hold fails.
    fail_once: AtomicBool,
}

/// A semaphore that starts with no permits.
struct Permits(tokio::sync::Semaphore);

impl Default for Permits {
    fn default() -> Self {
        Self(tokio::sync::Semaphore::new(0))
    }
}

impl std::ops::Deref for Permits {
    type Target = tokio::sync::Semaphore;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl MemStorage {
    fn check_up(&self) -> Result<(), StorageError> {
        if self.down.load(Ordering::SeqCst) {
            Err(StorageError::Unavailable("test outage".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Storage for MemStorage {
    fn kind(&self) -> StorageKind {
        StorageKind::Memory
    }
    async fn append(&self, events: &[Event]) -> Result<(), StorageError> {
        self.appends_begun.fetch_add(1, Ordering::SeqCst);
        if self.hold.load(Ordering::SeqCst) {
            self.permits.acquire().await.unwrap().forget();
        }
        if self.fail_once.swap(false, Ordering::SeqCst) {
            return Err(StorageError::Unavailable("test failure".into()));
        }
        self.check_up()?;
        self.events.lock().unwrap().extend_from_slice(events);
        Ok(())
    }
    async fn create_member(&self, m: &Member) -> Result<(), StorageError> {
        self.check_up()?;
        let key = format!("{}/{}", m.exchange_id, m.executor_id);
        let mut members = self.members.lock().unwrap();
        if members.contains_key(&key) {
            return Err(StorageError::AlreadyExists);
        }
        members.insert(key, m.clone());
        Ok(())
    }
    async fn replace_member(&self, m: &Member) -> Result<(), StorageError> {
        self.check_up()?;
        let key = format!("{}/{}", m.exchange_id, m.executor_id);
        self.members.lock().unwrap().insert(key, m.clone());
        Ok(())
    }
    async fn delete_member(&self, m: &Member) -> Result<(), StorageError> {
        self.check_up()?;
        let key = format!("{}/{}", m.exchange_id, m.executor_id);
        self.members.lock().unwrap().remove(&key);
        Ok(())
    }
    async fn put_answer(
        &self,
        x: &ExchangeId,
        scope: &str,
        answer: Vec<u8>,
    ) -> Result<(), StorageError> {
        self.check_up()?;
        let key = (x.clone(), scope.to_owned());
        self.answers.lock().unwrap().insert(key, answer);
        Ok(())
    }
    async fn put_blob(&self, x: &ExchangeId, sha: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.check_up()?;
        let key = (x.clone(), sha.to_owned());
        self.blobs.lock().unwrap().insert(key, bytes.to_vec());
        Ok(())
    }
    async fn get_blob(&self, x: &ExchangeId, sha: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = (x.clone(), sha.to_owned());
        Ok(self.blobs.lock().unwrap().get(&key).cloned())
    }
    async fn load_answers(&self) -> Result<Vec<(ExchangeId, Vec<u8>)>, StorageError> {
        let answers = self.answers.lock().unwrap();
        Ok(answers
            .iter()
            .map(|((x, _), a)| (x.clone(), a.clone()))
            .collect())
    }
    async fn delete_answer(&self, x: &ExchangeId, scope: &str) -> Result<(), StorageError> {
        let key = (x.clone(), scope.to_owned());
        self.answers.lock().unwrap().remove(&key);
        Ok(())
    }
    async fn load(&self) -> Result<Loaded, StorageError> {
        Ok(Loaded {
            members: self.members.lock().unwrap().values().cloned().collect(),
            events: self.events.lock().unwrap().clone(),
            skipped_lines: 0,
        })
    }
    async fn check(&self) -> Result<(), StorageError> {
        self.check_up()
    }
}

struct Res {
    status: StatusCode,
    headers: actix_web::http::header::HeaderMap,
    body: Value,
    raw: Vec<u8>,
}

async fn to_res<B: MessageBody>(r: ServiceResponse<B>) -> Res {
    let status = r.status();
    let headers = r.headers().clone();
    let raw = test::read_body(r).await.to_vec();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Res {
        status,
        headers,
        body,
        raw,
    }
}

macro_rules! app {
    ($storage:expr) => {
        app!($storage, mess_http::limits::Guard::default())
    };
    ($storage:expr, $guard:expr) => {{
        let storage: Arc<MemStorage> = $storage;
        let hub = Hub::load(storage.clone(), Arc::new(NoNotifier), Arc::new(SystemClock), Arc::new(OsEntropy))
            .await
            .unwrap();
        let state = web::Data::new(AppState {
            hub,
            capabilities: Arc::new(vec![
                json!({"id": "photo:capture", "tags": ["camera"]}),
                json!({"id": "location:indoor", "tags": ["location"]}),
            ]),
            default_exchange: ExchangeId::parse("home").unwrap(),
            guard: $guard,
            metrics: None,
            replicas: None,
        });
        let config = HttpConfig { body_limit: 64 * 1024, ..HttpConfig::default() };
        test::init_service(create_app(state, config)).await
    }};
}

async fn call<S, B>(
    app: &S,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Res
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default().method(method).uri(path);
    if let Some(k) = key {
        req = req.insert_header(("Authorization", format!("Bearer {k}")));
    }
    if let Some(b) = body {
        req = req.set_json(b);
    }
    to_res(test::call_service(app, req.to_request()).await).await
}

async fn register<S, B>(app: &S, exchange: &str, id: &str) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(
        app,
        Method::POST,
        &format!("/api/v1/exchanges/{exchange}/register"),
        None,
        Some(json!({"executor_id": id, "display_name": id, "capabilities": ["photo:capture"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    r.body["api_key"].as_str().unwrap().to_owned()
}

async fn create<S, B>(app: &S, key: &str, body: Value) -> String
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let r = call(
        app,
        Method::POST,
        "/api/v1/exchanges/home/requests",
        Some(key),
        Some(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.body["status"], "pending");
    r.body["ref"].as_str().unwrap().to_owned()
}

const HOME: &str = "/api/v1/exchanges/home";

#[actix_web::test]
async fn the_seeds_walkthrough_works_end_to_end() {
    let app = app!(Arc::new(MemStorage::default()));
    let agent = register(&app, "home", "claude-agent").await;
    let phone = register(&app, "home", "my-phone").await;
    assert!(phone.starts_with("mess_home_") && phone.len() >= "mess_home_".len() + 32);

    let r = create(
        &app,
        &agent,
        json!({"intent": "Check if the garage door is closed", "context": ["Getting ready for bed"],
               "priority": "normal", "response_hint": ["image"], "needed_by": "2099-01-01T00:00:00Z",
               "x-custom": {"kept": true}}),
    )
    .await;
    assert!(mess_core::ThreadRef::parse(&r).is_ok(), "{r}");

    let list = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests"),
        Some(&phone),
        None,
    )
    .await;
    assert_eq!(list.status, StatusCode::OK);
    let t = &list.body["threads"][0];
    assert_eq!(t["ref"], r.as_str());
    assert_eq!(t["status"], "pending");
    assert_eq!(t["requestor_id"], "claude-agent");
    assert_eq!(t["executor_id"], Value::Null);
    assert_eq!(t["priority"], "normal");
    assert!(t.get("messages").is_none());
    assert_eq!(list.body["next_cursor"], Value::Null);

    let claim = call(
        &app,
        Method::PATCH,
        &format!("{HOME}/requests/{r}"),
        Some(&phone),
        Some(json!({"status": "claimed"})),
    )
    .await;
    assert_eq!(claim.status, StatusCode::OK, "{:?}", claim.body);
    assert_eq!(claim.body["status"], "claimed");

    let done = call(
        &app,
        Method::PATCH,
        &format!("{HOME}/requests/{r}"),
        Some(&phone),
        Some(json!({"status": "completed", "mess": [{"response": {"content": ["Door is locked", {"image": "data:image/png;base64,aGVsbG8="}]}}]})),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);

    let get = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/{r}"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(get.status, StatusCode::OK);
    // PATCH answers the ref, the status and the thread exactly as GET then shows it.
    assert_eq!(done.body["ref"], r.as_str());
    assert_eq!(done.body["status"], "completed");
    assert_eq!(done.body["thread"], get.body["thread"]);
    assert_eq!(done.body.as_object().map(|o| o.len()), Some(3));
    let th = &get.body["thread"];
    assert_eq!(th["status"], "completed");
    assert_eq!(th["executor_id"], "my-phone");
    // Created, claimed, completed: three commands, version 3, and the ETag names it.
    assert_eq!(th["version"], 3);
    assert_eq!(get.headers.get("etag").unwrap(), "\"3\"");
    let req = test::TestRequest::get()
        .uri(&format!("{HOME}/requests/{r}"))
        .insert_header(("Authorization", format!("Bearer {agent}")))
        .insert_header(("If-None-Match", "W/\"2\", \"3\""))
        .to_request();
    let unchanged = to_res(test::call_service(&app, req).await).await;
    assert_eq!(unchanged.status, StatusCode::NOT_MODIFIED);
    assert!(unchanged.raw.is_empty());
    assert_eq!(unchanged.headers.get("etag").unwrap(), "\"3\"");
    let req = test::TestRequest::get()
        .uri(&format!("{HOME}/requests/{r}"))
        .insert_header(("Authorization", format!("Bearer {agent}")))
        .insert_header(("If-None-Match", "\"2\""))
        .to_request();
    let changed = to_res(test::call_service(&app, req).await).await;
    assert_eq!(
        changed.status,
        StatusCode::OK,
        "an older version gets the thread"
    );
    let msgs = th["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["from"], "claude-agent");
    assert_eq!(
        msgs[0]["mess"][0]["request"]["intent"],
        "Check if the garage door is closed"
    );
    assert_eq!(
        msgs[0]["mess"][0]["request"]["x-custom"],
        json!({"kept": true})
    );
    assert_eq!(
        msgs[0]["mess"][0]["request"]["needed_by"],
        "2099-01-01T00:00:00Z"
    );
    assert_eq!(
        msgs[1]["mess"][0],
        json!({"status": {"re": r, "code": "claimed"}})
    );
    assert_eq!(msgs[2]["from"], "my-phone");
    assert_eq!(
        msgs[2]["mess"][0],
        json!({"status": {"re": r, "code": "completed"}})
    );
    assert_eq!(
        msgs[2]["mess"][1]["response"]["content"][0],
        "Door is locked"
    );

    let att = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/{r}/attachments/1"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(att.status, StatusCode::OK);
    assert_eq!(att.raw, b"hello");
    assert_eq!(att.headers.get("content-type").unwrap(), "image/png");
    let missing = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/{r}/attachments/2"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    let execs = call(
        &app,
        Method::GET,
        &format!("{HOME}/executors"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(execs.status, StatusCode::OK);
    let ids: Vec<&str> = execs.body["executors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["claude-agent", "my-phone"]);
    for e in execs.body["executors"].as_array().unwrap() {
        for field in [
            "id",
            "display_name",
            "capabilities",
            "last_seen",
            "created_at",
        ] {
            assert!(e.get(field).is_some(), "{field} missing in {e}");
        }
        assert!(e.get("notifications").is_none() && e.get("key_hash").is_none());
    }
}

#[actix_web::test]
async fn registration_errors() {
    let app = app!(Arc::new(MemStorage::default()));
    register(&app, "home", "my-phone").await;
    let again = call(
        &app,
        Method::POST,
        &format!("{HOME}/register"),
        None,
        Some(json!({"executor_id": "my-phone"})),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body["error"].is_string());
    assert_eq!(again.body["code"], "already_registered");
    let reserved = call(
        &app,
        Method::POST,
        &format!("{HOME}/register"),
        None,
        Some(json!({"executor_id": "exchange"})),
    )
    .await;
    assert_eq!(reserved.status, StatusCode::CONFLICT, "{:?}", reserved.body);
    assert_eq!(reserved.body["code"], "reserved_id");
    for bad in [
        json!({"executor_id": "../etc"}),
        json!({}),
        json!({"executor_id": 5}),
        json!({"executor_id": "a", "capabilities": "x"}),
    ] {
        let r = call(
            &app,
            Method::POST,
            &format!("{HOME}/register"),
            None,
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body["error"].is_string());
        assert_eq!(r.body["code"], "invalid_request", "{bad}");
    }
    for exchange in ["Home", "a_b", "a=b", "a.b"] {
        let r = call(
            &app,
            Method::POST,
            &format!("/api/v1/exchanges/{exchange}/register"),
            None,
            Some(json!({"executor_id": "x"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{exchange}");
    }
    let req = test::TestRequest::post()
        .uri(&format!("{HOME}/register"))
        .insert_header(("Content-Type", "text/plain"))
        .set_payload(r#"{"executor_id": "x"}"#)
        .to_request();
    let r = to_res(test::call_service(&app, req).await).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let req = test::TestRequest::post()
        .uri(&format!("{HOME}/register"))
        .set_payload(r#"{"executor_id": "no-content-type"}"#)
        .to_request();
    let r = to_res(test::call_service(&app, req).await).await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "JSON without a Content-Type is read as JSON"
    );
    let req = test::TestRequest::post()
        .uri(&format!("{HOME}/register"))
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{not json")
        .to_request();
    let r = to_res(test::call_service(&app, req).await).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["error"].is_string());
}

#[actix_web::test]
async fn authentication_comes_first_and_exchanges_are_isolated() {
    let app = app!(Arc::new(MemStorage::default()));
    let home = register(&app, "home", "a").await;
    let office = register(&app, "office", "b").await;
    let r = create(&app, &home, json!({"intent": "x"})).await;

    let none = call(&app, Method::GET, &format!("{HOME}/requests"), None, None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.body["error"].is_string());
    assert_eq!(none.body["code"], "unauthorized");
    // An error actix answers by itself gets a code too.
    let outside = call(&app, Method::GET, "/nowhere", None, None).await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    assert_eq!(outside.body["code"], "not_found");
    let req = test::TestRequest::get()
        .uri(&format!("{HOME}/requests"))
        .insert_header(("Authorization", format!("bearer {home}")))
        .to_request();
    assert_eq!(
        test::call_service(&app, req).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let truncated = &home[..home.len() - 1];
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("{HOME}/requests"),
            Some(truncated),
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let forged = format!("mess_home_{}", "0".repeat(64));
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("{HOME}/requests"),
            Some(&forged),
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );

    let other = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/{r}"),
        Some(&office),
        None,
    )
    .await;
    assert_eq!(other.status, StatusCode::FORBIDDEN);
    let list = call(
        &app,
        Method::GET,
        "/api/v1/exchanges/office/requests",
        Some(&office),
        None,
    )
    .await;
    assert_eq!(list.body["threads"], json!([]));

    // Unknown paths and wrong methods under an exchange: 401 without a key, then 404/405.
    assert_eq!(
        call(&app, Method::GET, &format!("{HOME}/nope"), None, None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let nf = call(
        &app,
        Method::GET,
        &format!("{HOME}/nope"),
        Some(&home),
        None,
    )
    .await;
    assert_eq!(nf.status, StatusCode::NOT_FOUND);
    assert!(nf.body["error"].is_string());
    assert_eq!(
        call(
            &app,
            Method::DELETE,
            &format!("{HOME}/requests"),
            None,
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let na = call(
        &app,
        Method::DELETE,
        &format!("{HOME}/requests"),
        Some(&home),
        None,
    )
    .await;
    assert_eq!(na.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(na.body["error"].is_string());
    let outside = call(&app, Method::GET, "/nowhere", None, None).await;
    assert_eq!(outside.status, StatusCode::NOT_FOUND);
    assert!(outside.body["error"].is_string());
}

#[actix_web::test]
async fn transitions_and_permissions_follow_the_protocol() {
    let app = app!(Arc::new(MemStorage::default()));
    let agent = register(&app, "home", "agent").await;
    let phone = register(&app, "home", "phone").await;
    let other = register(&app, "home", "other").await;
    let r = create(&app, &agent, json!({"intent": "x"})).await;
    let path = format!("{HOME}/requests/{r}");

    let bad = call(
        &app,
        Method::PATCH,
        &path,
        Some(&phone),
        Some(json!({"status": "completed"})),
    )
    .await;
    assert_eq!(bad.status, StatusCode::CONFLICT);
    assert_eq!(
        (bad.body["from"].as_str(), bad.body["to"].as_str()),
        (Some("pending"), Some("completed"))
    );
    assert_eq!(bad.body["code"], "invalid_transition");

    assert_eq!(
        call(
            &app,
            Method::PATCH,
            &path,
            Some(&phone),
            Some(json!({"status": "claimed"}))
        )
        .await
        .status,
        StatusCode::OK
    );
    let again = call(
        &app,
        Method::PATCH,
        &path,
        Some(&phone),
        Some(json!({"status": "claimed"})),
    )
    .await;
    assert_eq!(
        again.status,
        StatusCode::OK,
        "a repeated claim by the assignee is a no-op"
    );
    let stolen = call(
        &app,
        Method::PATCH,
        &path,
        Some(&other),
        Some(json!({"status": "claimed"})),
    )
    .await;
    assert_eq!(stolen.status, StatusCode::CONFLICT);
    assert_eq!(stolen.body["code"], "already_claimed");
    let forbidden = call(
        &app,
        Method::PATCH,
        &path,
        Some(&other),
        Some(json!({"status": "in_progress"})),
    )
    .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    assert_eq!(forbidden.body["code"], "forbidden");
    let msg = call(
        &app,
        Method::PATCH,
        &path,
        Some(&other),
        Some(json!({"mess": [{"query": {"q": "?"}}]})),
    )
    .await;
    assert_eq!(msg.status, StatusCode::FORBIDDEN);

    let alias = call(
        &app,
        Method::PATCH,
        &path,
        Some(&phone),
        Some(json!({"status": "in-progress"})),
    )
    .await;
    assert_eq!(alias.status, StatusCode::OK);
    assert_eq!(alias.body["status"], "in_progress");
    for bad in [
        json!({"status": "IN_PROGRESS"}),
        json!({"status": 3}),
        json!({"mess": {"reply": {}}}),
        json!({"mess": [{"shout": 1}]}),
        json!({}),
    ] {
        let r = call(&app, Method::PATCH, &path, Some(&phone), Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let cancel = call(
        &app,
        Method::PATCH,
        &path,
        Some(&agent),
        Some(json!({"status": "canceled"})),
    )
    .await;
    assert_eq!(cancel.status, StatusCode::OK);
    assert_eq!(cancel.body["status"], "cancelled");
    let after = call(
        &app,
        Method::PATCH,
        &path,
        Some(&phone),
        Some(json!({"status": "completed"})),
    )
    .await;
    assert_eq!(after.status, StatusCode::CONFLICT);
    assert_eq!(after.body["from"], "cancelled");

    let unknown = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/2026-01-01-ZZZZ"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.body["error"], "Thread not found");
    for traversal in ["..%2F..%2Fetc", "%2e%2e", "a%00b", "x\\y"] {
        let r = call(
            &app,
            Method::GET,
            &format!("{HOME}/requests/{traversal}"),
            Some(&agent),
            None,
        )
        .await;
        assert!(r.status.is_client_error(), "{traversal}: {}", r.status);
        assert!(r.body["error"].is_string(), "{traversal}");
    }
}

#[actix_web::test]
async fn exactly_one_of_many_concurrent_claims_wins() {
    let app = app!(Arc::new(MemStorage::default()));
    let agent = register(&app, "home", "agent").await;
    let mut keys = Vec::new();
    for i in 0..16 {
        keys.push(register(&app, "home", &format!("phone-{i}")).await);
    }
    let r = create(&app, &agent, json!({"intent": "race"})).await;
    let path = format!("{HOME}/requests/{r}");
    let claims = keys.iter().map(|k| {
        call(
            &app,
            Method::PATCH,
            &path,
            Some(k),
            Some(json!({"status": "claimed"})),
        )
    });
    let results = futures::future::join_all(claims).await;
    let wins = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    let conflicts = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((wins, conflicts), (1, 15));
    for lost in results.iter().filter(|r| r.status == StatusCode::CONFLICT) {
        assert_eq!(lost.body["code"], "already_claimed", "{:?}", lost.body);
    }
}

#[actix_web::test]
async fn listing_is_newest_first_filtered_and_paginated() {
    let app = app!(Arc::new(MemStorage::default()));
    let agent = register(&app, "home", "agent").await;
    let phone = register(&app, "home", "phone").await;
    let mut refs = Vec::new();
    for i in 0..5 {
        refs.push(create(&app, &agent, json!({"intent": format!("task {i}")})).await);
        std::thread::sleep(std::time::Duration::from_millis(3));
    }
    call(
        &app,
        Method::PATCH,
        &format!("{HOME}/requests/{}", refs[0]),
        Some(&phone),
        Some(json!({"status": "claimed"})),
    )
    .await;

    let all = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests"),
        Some(&agent),
        None,
    )
    .await;
    let order: Vec<&str> = all.body["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ref"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        vec![&refs[0], &refs[4], &refs[3], &refs[2], &refs[1]]
    );

    let claimed = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests?status=claimed"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(claimed.body["threads"].as_array().unwrap().len(), 1);
    let received = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests?status=received"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(received.body["threads"].as_array().unwrap().len(), 4);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("{HOME}/requests?limit=2&cursor={c}"),
            None => format!("{HOME}/requests?limit=2"),
        };
        let page = call(&app, Method::GET, &q, Some(&agent), None).await;
        assert_eq!(page.status, StatusCode::OK);
        for t in page.body["threads"].as_array().unwrap() {
            seen.push(t["ref"].as_str().unwrap().to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, order);

    for bad in [
        "status=done",
        "limit=0",
        "limit=501",
        "limit=x",
        "cursor=zz",
    ] {
        let r = call(
            &app,
            Method::GET,
            &format!("{HOME}/requests?{bad}"),
            Some(&agent),
            None,
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[actix_web::test]
async fn profiles_can_only_be_updated_by_their_owner() {
    let app = app!(Arc::new(MemStorage::default()));
    let phone = register(&app, "home", "my-phone").await;
    let other = register(&app, "home", "other").await;
    let body = json!({
        "display_name": "Teague Phone",
        "capabilities": ["photo:capture", "location:indoor", "location:outdoor"],
        "notifications": [{"type": "ntfy", "topic": "mess-alerts"}, {"type": "slack", "webhook_url": "https://hooks.slack.com/x"}],
        "preferences": {"min_priority": "normal", "quiet_hours": {"enabled": true, "start": "22:00", "end": "07:00"}}
    });
    let ok = call(
        &app,
        Method::PATCH,
        &format!("{HOME}/executors/my-phone"),
        Some(&phone),
        Some(body.clone()),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    assert_eq!(ok.body["executor"]["display_name"], "Teague Phone");
    let theirs = call(
        &app,
        Method::PATCH,
        &format!("{HOME}/executors/my-phone"),
        Some(&other),
        Some(body.clone()),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    let missing = call(
        &app,
        Method::PATCH,
        &format!("{HOME}/executors/ghost"),
        Some(&other),
        Some(body),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let invalid = call(
        &app,
        Method::PATCH,
        &format!("{HOME}/executors/my-phone"),
        Some(&phone),
        Some(json!({"display_name": 1})),
    )
    .await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    let list = call(
        &app,
        Method::GET,
        &format!("{HOME}/executors"),
        Some(&phone),
        None,
    )
    .await;
    let me = list.body["executors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "my-phone")
        .unwrap()
        .clone();
    assert_eq!(me["capabilities"].as_array().unwrap().len(), 3);
}

#[actix_web::test]
async fn hostile_bodies_get_json_4xx() {
    let app = app!(Arc::new(MemStorage::default()));
    let key = register(&app, "home", "a").await;
    let big = json!({"intent": "x".repeat(70 * 1024)});
    let r = call(
        &app,
        Method::POST,
        &format!("{HOME}/requests"),
        Some(&key),
        Some(big),
    )
    .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(r.body["error"].is_string());
    let deep = format!(
        "{{\"intent\":\"x\",\"context\":[{}1{}]}}",
        "[".repeat(200),
        "]".repeat(200)
    );
    let req = test::TestRequest::post()
        .uri(&format!("{HOME}/requests"))
        .insert_header(("Authorization", format!("Bearer {key}")))
        .insert_header(("Content-Type", "application/json"))
        .set_payload(deep)
        .to_request();
    let r = to_res(test::call_service(&app, req).await).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for bad in [
        json!({"intent": ["x"]}),
        json!({"intent": "   "}),
        json!({"intent": "a\u{1}b"}),
        json!({"intent": "x", "priority": "high"}),
        json!({"intent": "x", "context": {"a": 1}}),
        json!({"intent": "x", "needed_by": 5}),
    ] {
        let r = call(
            &app,
            Method::POST,
            &format!("{HOME}/requests"),
            Some(&key),
            Some(bad.clone()),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body["error"].is_string());
    }
}

#[actix_web::test]
async fn headers_cors_health_and_capabilities() {
    let app = app!(Arc::new(MemStorage::default()));
    let key = register(&app, "home", "a").await;
    let h = call(&app, Method::GET, "/health", None, None).await;
    assert_eq!(h.status, StatusCode::OK);
    assert_eq!(h.body["status"], "ok");
    assert_eq!(h.body["service"], "mess-exchange");
    assert_eq!(h.body["storage"], "memory");
    assert_eq!(h.body["exchange_id"], "home");
    assert_eq!(h.headers.get("cache-control").unwrap(), "no-store");
    assert_eq!(h.headers.get("x-content-type-options").unwrap(), "nosniff");

    let req = test::TestRequest::default()
        .method(Method::OPTIONS)
        .uri(&format!("{HOME}/requests"))
        .insert_header(("Origin", "https://app.example"))
        .insert_header(("Access-Control-Request-Method", "POST"))
        .to_request();
    let pre = test::call_service(&app, req).await;
    assert_eq!(pre.status(), StatusCode::NO_CONTENT);
    assert!(
        pre.headers()
            .get("access-control-allow-methods")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("PATCH")
    );
    assert!(
        pre.headers()
            .get("access-control-allow-headers")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Authorization")
    );
    let allowed = pre.headers().get("access-control-allow-headers").unwrap();
    assert!(
        allowed.to_str().unwrap().contains("X-Registration-Token"),
        "a browser can register on an exchange that needs a token"
    );

    let caps = call(
        &app,
        Method::GET,
        &format!("{HOME}/capabilities?tag=camera"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        caps.body["capabilities"],
        json!([{"id": "photo:capture", "tags": ["camera"]}])
    );
    let spec = call(&app, Method::GET, "/api/v1/openapi.json", None, None).await;
    assert!(spec.body["paths"]["/api/v1/exchanges/{exchange_id}/requests"].is_object());
}

#[actix_web::test]
async fn a_storage_outage_refuses_writes_keeps_reads_and_recovers() {
    let storage = Arc::new(MemStorage::default());
    let app = app!(storage.clone());
    let key = register(&app, "home", "a").await;
    let r = create(&app, &key, json!({"intent": "before"})).await;
    storage.down.store(true, Ordering::SeqCst);
    let w = call(
        &app,
        Method::POST,
        &format!("{HOME}/requests"),
        Some(&key),
        Some(json!({"intent": "during"})),
    )
    .await;
    assert_eq!(w.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(w.body["error"].is_string());
    let read = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/{r}"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    let h = call(&app, Method::GET, "/health", None, None).await;
    assert_eq!(h.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h.body["status"], "degraded");
    let list = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(
        list.body["threads"].as_array().unwrap().len(),
        1,
        "the refused create left no trace"
    );
    storage.down.store(false, Ordering::SeqCst);
    create(&app, &key, json!({"intent": "after"})).await;
    assert_eq!(
        call(&app, Method::GET, "/health", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(
        storage
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.kind.event_type() == "thread_created")
            .count(),
        2
    );
}

#[actix_web::test]
async fn readyz_tells_a_failed_write_and_an_outage_and_livez_stays_200() {
    let storage = Arc::new(MemStorage::default());
    let app = app!(storage.clone());
    let key = register(&app, "home", "a").await;
    let ready = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(
        ready.body,
        json!({"status": "ready", "checks": {"replayed": true, "storage": true, "writes": true}})
    );
    // A write fails while storage still answers its checks (say, a full quota).
    storage.fail_once.store(true, Ordering::SeqCst);
    let w = call(
        &app,
        Method::POST,
        &format!("{HOME}/requests"),
        Some(&key),
        Some(json!({"intent": "lost"})),
    )
    .await;
    assert_eq!(w.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["status"], "not_ready");
    assert_eq!(r.body["checks"]["writes"], false);
    assert_eq!(r.body["checks"]["storage"], true);
    // That probe's write went through: ready again without waiting for traffic.
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::OK);
    // An outage: not ready, /health degraded, /livez still 200.
    storage.down.store(true, Ordering::SeqCst);
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["checks"]["storage"], false);
    let h = call(&app, Method::GET, "/health", None, None).await;
    assert_eq!(h.body["status"], "degraded");
    let l = call(&app, Method::GET, "/livez", None, None).await;
    assert_eq!(l.status, StatusCode::OK);
    assert_eq!(l.body["status"], "alive");
    // Back: the first probe still reports the failed one before it, the next is ready.
    storage.down.store(false, Ordering::SeqCst);
    let r = call(&app, Method::GET, "/readyz", None, None).await;
    assert_eq!(
        r.body["checks"],
        json!({"replayed": true, "storage": true, "writes": false})
    );
    let h = call(&app, Method::HEAD, "/readyz", None, None).await;
    assert_eq!(h.status, StatusCode::OK);
    let p = call(&app, Method::POST, "/livez", None, None).await;
    assert_eq!(p.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// `GET path` over a plain socket: (status line, body).
fn get_raw(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

#[actix_web::test]
async fn while_the_log_replays_livez_is_200_readyz_503_and_the_rest_503_json() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = mess_http::serve_starting(listener).unwrap();
    let handle = server.handle();
    let running = tokio::spawn(server);
    let answers = tokio::task::spawn_blocking(move || {
        ["/livez", "/readyz", "/api/v1/exchanges/home/requests"].map(|p| get_raw(addr, p))
    })
    .await
    .unwrap();
    handle.stop(true).await;
    running.await.unwrap().unwrap();
    let [live, ready, other] = answers;
    assert!(live.0.contains(" 200 "), "{live:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&live.1).unwrap()["status"],
        "alive"
    );
    assert!(ready.0.contains(" 503 "), "{ready:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&ready.1).unwrap()["checks"]["replayed"],
        false
    );
    assert!(other.0.contains(" 503 "), "{other:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&other.1).unwrap()["code"],
        "storage_unavailable"
    );
}

#[actix_web::test]
async fn a_rotated_key_replaces_the_old_one_at_once() {
    let app = app!(Arc::new(MemStorage::default()));
    let old = register(&app, "home", "phone").await;
    let other = register(&app, "home", "other").await;
    let path = format!("{HOME}/executors/phone/rotate-key");
    let theirs = call(&app, Method::POST, &path, Some(&other), None).await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    let r = call(&app, Method::POST, &path, Some(&old), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let new = r.body["api_key"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let with_old = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests"),
        Some(&old),
        None,
    )
    .await;
    assert_eq!(with_old.status, StatusCode::UNAUTHORIZED);
    let with_new = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests"),
        Some(&new),
        None,
    )
    .await;
    assert_eq!(with_new.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_member_who_leaves_hands_back_what_it_holds() {
    let app = app!(Arc::new(MemStorage::default()));
    let agent = register(&app, "home", "agent").await;
    let phone = register(&app, "home", "phone").await;
    let claimed = create(&app, &agent, json!({"intent": "claimed"})).await;
    let started = create(&app, &agent, json!({"intent": "started"})).await;
    let open = create(&app, &agent, json!({"intent": "left open"})).await;
    let patch = |r: &str, body: Value| {
        let (app, phone, path) = (&app, &phone, format!("{HOME}/requests/{r}"));
        async move { call(app, Method::PATCH, &path, Some(phone), Some(body)).await }
    };
    assert_eq!(
        patch(&claimed, json!({"status": "claimed"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        patch(&started, json!({"status": "claimed"})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        patch(&started, json!({"status": "in_progress"}))
            .await
            .status,
        StatusCode::OK
    );
    let gone = call(
        &app,
        Method::DELETE,
        &format!("{HOME}/executors/phone"),
        Some(&phone),
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::OK, "{:?}", gone.body);
    for r in [&claimed, &started, &open] {
        let t = call(
            &app,
            Method::GET,
            &format!("{HOME}/requests/{r}"),
            Some(&agent),
            None,
        )
        .await;
        assert_eq!(t.body["thread"]["status"], "pending", "{r}: {:?}", t.body);
        assert!(t.body["thread"]["executor_id"].is_null());
    }
    // Said in the thread, by the exchange, with why.
    let t = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/{started}"),
        Some(&agent),
        None,
    )
    .await;
    let last = t.body["thread"]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["from"], "exchange", "{last}");
    assert!(last.to_string().contains("member_removed"), "{last}");
}

#[actix_web::test]
async fn a_member_can_remove_itself_and_only_itself() {
    let storage = Arc::new(MemStorage::default());
    let app = app!(storage.clone());
    let key = register(&app, "home", "phone").await;
    let other = register(&app, "home", "other").await;
    let r = create(&app, &key, json!({"intent": "stays"})).await;
    let theirs = call(
        &app,
        Method::DELETE,
        &format!("{HOME}/executors/phone"),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    let gone = call(
        &app,
        Method::DELETE,
        &format!("{HOME}/executors/phone"),
        Some(&key),
        None,
    )
    .await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(gone.body["removed"], true);
    assert_eq!(
        call(
            &app,
            Method::GET,
            &format!("{HOME}/requests"),
            Some(&key),
            None
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    let list = call(
        &app,
        Method::GET,
        &format!("{HOME}/executors"),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(list.body["executors"].as_array().unwrap().len(), 1);
    let thread = call(
        &app,
        Method::GET,
        &format!("{HOME}/requests/{r}"),
        Some(&other),
        None,
    )
    .await;
    assert_eq!(thread.status, StatusCode::OK, "threads stay");
    assert!(
        !storage.members.lock().unwrap().contains_key("home/phone"),
        "the record is deleted"
    );
    register(&app, "home", "phone").await;
}

#[actix_web::test]
async fn a_registration_token_is_required_when_configured() {
    let guard = mess_http::limits::Guard {
        registration: mess_http::limits::RegistrationPolicy::new(
            Some("s3cret".into()),
            Some("office=other"),
        ),
        ..Default::default()
    };
    let app = app!(Arc::new(MemStorage::default()), guard);
    let body = json!({"executor_id": "phone"});
    let none = call(
        &app,
        Method::POST,
        &format!("{HOME}/register"),
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.body["error"].is_string());
    let wrong = call(
        &app,
        Method::POST,
        &format!("{HOME}/register"),
        Some("nope"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let req = test::TestRequest::post()
        .uri(&format!("{HOME}/register"))
        .insert_header(("X-Registration-Token", "s3cret"))
        .set_json(&body)
        .to_request();
    assert_eq!(
        test::call_service(&app, req).await.status(),
        StatusCode::CREATED
    );
    let office = call(
        &app,
        Method::POST,
        "/api/v1/exchanges/office/register",
        Some("s3cret"),
        Some(body.clone()),
    )
    .await;
    assert_eq!(
        office.status,
        StatusCode::UNAUTHORIZED,
        "office has its own token"
    );
    let office = call(
        &app,
        Method::POST,
        "/api/v1/exchanges/office/register",
        Some("other"),
        Some(body),
    )
    .await;
    assert_eq!(office.status, StatusCode::CREATED);
}

#[actix_web::test]
async fn registrations_and_failed_authentications_are_rate_limited_per_client() {
    let guard = mess_http::limits::Guard {
        registrations: mess_http::limits::RateLimiter::new(3),
        auth_failures: mess_http::limits::RateLimiter::new(2),
        ..Default::default()
    };
    let app = app!(Arc::new(MemStorage::default()), guard);
    let peer = "10.1.2.3:4000".parse::<std::net::SocketAddr>().unwrap();
    let reg = |id: &str| {
        test::TestRequest::post()
            .uri(&format!("{HOME}/register"))
            .peer_addr(peer)
            .set_json(json!({"executor_id": id}))
            .to_request()
    };
    let mut key = String::new();
    for id in ["a", "b", "c"] {
        let r = to_res(test::call_service(&app, reg(id)).await).await;
        assert_eq!(r.status, StatusCode::CREATED);
        key = r.body["api_key"].as_str().unwrap().to_owned();
    }
    let limited = to_res(test::call_service(&app, reg("d")).await).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.body["error"].is_string());
    assert!(limited.headers.get("retry-after").is_some());

    let bad = |k: &str| {
        test::TestRequest::get()
            .uri(&format!("{HOME}/requests"))
            .peer_addr(peer)
            .insert_header(("Authorization", format!("Bearer {k}")))
            .to_request()
    };
    for _ in 0..2 {
        assert_eq!(
            test::call_service(&app, bad("wrong")).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let blocked = to_res(test::call_service(&app, bad(&key)).await).await;
    assert_eq!(
        blocked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "even a good key waits once the limit is spent"
    );
}

// --- the writer: one append in flight while the next batch is decided ----------------------

mod writer {
    use mess_core::{
        Actor, Block, Command, ExecutorId, NewRequest, Registration, Status, StatusUpdate, Thread,
        ThreadRef,
    };
    use mess_http::hub::{ExchangeHandle, WriteError, Written};

    use super::*;

    fn member(id: &str) -> Actor {
        Actor::Member(ExecutorId::parse(id).unwrap())
    }

    async fn hub_with(storage: Arc<MemStorage>, members: &[&str]) -> Arc<ExchangeHandle> {
        let hub = Hub::load(
            storage,
            Arc::new(NoNotifier),
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
        )
        .await
        .unwrap();
        let h = hub.exchange_or_create(&ExchangeId::parse("home").unwrap());
        for m in members {
            let reg = Registration::parse(&json!({"executor_id": m})).unwrap();
            h.submit(member(m), Command::Register(reg)).await.unwrap();
        }
        h
    }

    async fn create(h: &ExchangeHandle, by: &str, intent: &str) -> ThreadRef {
        let req = NewRequest::parse(json!({"intent": intent})).unwrap();
        match h.submit(member(by), Command::Create(req)).await.unwrap() {
            Written::Thread(t) => t.thread_ref.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn followup(thread: &ThreadRef, text: &str) -> Command {
        let block = Block::parse(&json!({"followup": {"text": text}})).unwrap();
        Command::Update {
            thread: thread.clone(),
            status: None,
            mess: Some(vec![block]),
        }
    }

    fn to_status(thread: &ThreadRef, to: Status) -> Command {
        Command::Update {
            thread: thread.clone(),
            status: Some(StatusUpdate {
                to,
                extra: serde_json::Map::new(),
            }),
            mess: None,
        }
    }

    fn messages(t: &Thread) -> usize {
        serde_json::to_value(t).unwrap()["messages"]
            .as_array()
            .unwrap()
            .len()
    }

    fn published(h: &ExchangeHandle, r: &ThreadRef) -> Option<Arc<Thread>> {
        h.read(|x| x.thread(r).cloned())
    }

    /// A command the writer refuses at once (no such thread). Its answer also proves that
    /// everything queued before it has been decided.
    async fn refused_at_once(h: &ExchangeHandle, by: &str) {
        let missing = ThreadRef::parse("2026-01-01-ZZZZ").unwrap();
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            h.submit(member(by), followup(&missing, "x")),
        )
        .await
        .expect("a refusal does not wait for the append in flight");
        assert!(matches!(answer, Err(WriteError::Domain(_))), "{answer:?}");
    }

    /// The stored `followup` events of `t`, as JSON lines, in log order.
    fn followups_in_log(storage: &MemStorage, t: &ThreadRef) -> Vec<String> {
        storage
            .events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.thread_ref.as_ref() == Some(t))
            .map(|e| serde_json::to_string(e).unwrap())
            .filter(|j| j.contains("followup"))
            .collect()
    }

    async fn until_begun(storage: &MemStorage, n: usize) {
        for _ in 0..1000 {
            if storage.appends_begun.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("append {n} never began");
    }

    #[tokio::test]
    async fn the_next_batch_is_decided_during_an_append_and_each_publishes_its_own_state() {
        let storage = Arc::new(MemStorage::default());
        let h = hub_with(storage.clone(), &["a"]).await;
        let t = create(&h, "a", "is the door locked?").await;
        let begun = storage.appends_begun.load(Ordering::SeqCst);

        storage.hold.store(true, Ordering::SeqCst);
        let first = tokio::spawn({
            let (h, t) = (h.clone(), t.clone());
            async move { h.submit(member("a"), followup(&t, "one")).await }
        });
        until_begun(&storage, begun + 1).await;
        refused_at_once(&h, "a").await;
        let second = tokio::spawn({
            let (h, t) = (h.clone(), t.clone());
            async move { h.submit(member("a"), followup(&t, "two")).await }
        });
        refused_at_once(&h, "a").await;
        assert_eq!(
            messages(&published(&h, &t).unwrap()),
            1,
            "nothing unacknowledged is read"
        );

        // The first append lands: its state is published, not the second's (decided on top).
        storage.permits.add_permits(1);
        match first.await.unwrap().unwrap() {
            Written::Thread(th) => assert_eq!(messages(&th), 2),
            other => panic!("{other:?}"),
        }
        until_begun(&storage, begun + 2).await;
        assert_eq!(messages(&published(&h, &t).unwrap()), 2);

        storage.hold.store(false, Ordering::SeqCst);
        storage.permits.add_permits(1);
        match second.await.unwrap().unwrap() {
            Written::Thread(th) => assert_eq!(messages(&th), 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(messages(&published(&h, &t).unwrap()), 3);
        let texts = followups_in_log(&storage, &t);
        assert_eq!(texts.len(), 2);
        assert!(
            texts[0].contains("one") && texts[1].contains("two"),
            "log order is decision order"
        );
    }

    #[tokio::test]
    async fn on_a_slow_store_appends_overlap_and_land_in_decided_order() {
        let storage = Arc::new(MemStorage::default());
        let h = hub_with(storage.clone(), &["a"]).await;
        let t = create(&h, "a", "is the door locked?").await;
        let submit = |text: &'static str| {
            let (h, t) = (h.clone(), t.clone());
            tokio::spawn(async move { h.submit(member("a"), followup(&t, text)).await })
        };
        let begun = storage.appends_begun.load(Ordering::SeqCst);

        // One slow append (10 ms) first: later ones start at least 10/8 ms apart.
        storage.hold.store(true, Ordering::SeqCst);
        let one = submit("one");
        until_begun(&storage, begun + 1).await;
        tokio::time::sleep(Duration::from_millis(10)).await;
        storage.permits.add_permits(1);
        one.await.unwrap().unwrap();

        // The next append is held; the one after it begins anyway.
        let two = submit("two");
        until_begun(&storage, begun + 2).await;
        let three = submit("three");
        until_begun(&storage, begun + 3).await;
        assert_eq!(
            messages(&published(&h, &t).unwrap()),
            2,
            "nothing unacknowledged is read"
        );

        storage.hold.store(false, Ordering::SeqCst);
        storage.permits.add_permits(2);
        for (task, n) in [(two, 3), (three, 4)] {
            match task.await.unwrap().unwrap() {
                Written::Thread(th) => assert_eq!(messages(&th), n),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(messages(&published(&h, &t).unwrap()), 4);
        let log = followups_in_log(&storage, &t);
        assert_eq!(log.len(), 3);
        assert!(
            log[0].contains("one") && log[1].contains("two") && log[2].contains("three"),
            "log order is decision order"
        );
    }

    #[tokio::test]
    async fn a_failed_append_refuses_what_was_decided_on_top_of_it() {
        let storage = Arc::new(MemStorage::default());
        let h = hub_with(storage.clone(), &["a", "e"]).await;
        let t = create(&h, "a", "is the door locked?").await;
        let begun = storage.appends_begun.load(Ordering::SeqCst);

        storage.hold.store(true, Ordering::SeqCst);
        let claim = tokio::spawn({
            let (h, t) = (h.clone(), t.clone());
            async move { h.submit(member("e"), to_status(&t, Status::Claimed)).await }
        });
        until_begun(&storage, begun + 1).await;
        // Valid only because the claim (not yet stored) was decided first.
        let start = tokio::spawn({
            let (h, t) = (h.clone(), t.clone());
            async move {
                h.submit(member("e"), to_status(&t, Status::InProgress))
                    .await
            }
        });
        refused_at_once(&h, "e").await;

        storage.fail_once.store(true, Ordering::SeqCst);
        storage.hold.store(false, Ordering::SeqCst);
        storage.permits.add_permits(2);
        let claim = claim.await.unwrap();
        let start = start.await.unwrap();
        assert!(
            matches!(claim, Err(WriteError::Unavailable(_))),
            "{claim:?}"
        );
        assert!(
            matches!(start, Err(WriteError::Unavailable(_))),
            "{start:?}"
        );
        assert_eq!(published(&h, &t).unwrap().status, Status::Pending);
        // The claim's append failed: its event is not in the log. (The start's own append,
        // in flight beside it, may have succeeded; it is refused all the same, having been
        // decided on top of the claim: docs/reliability.md.)
        assert!(
            !storage
                .events
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.thread_ref.as_ref() == Some(&t) && e.seq == 2),
            "the failed claim did not reach the log"
        );

        // The working state was rolled back too: the claim can be made again.
        match h
            .submit(member("e"), to_status(&t, Status::Claimed))
            .await
            .unwrap()
        {
            Written::Thread(th) => assert_eq!(th.status, Status::Claimed),
            other => panic!("{other:?}"),
        }
    }
}

#[actix_web::test]
async fn a_wait_answers_when_the_thread_changes_and_bad_waits_are_refused() {
    let app = app!(Arc::new(MemStorage::default()));
    let agent = register(&app, "home", "agent").await;
    let phone = register(&app, "home", "phone").await;
    let r = create(&app, &agent, json!({"intent": "x"})).await;
    let path = format!("{HOME}/requests/{r}");

    let at_once = call(
        &app,
        Method::GET,
        &format!("{path}?wait=30&since=0"),
        Some(&agent),
        None,
    )
    .await;
    assert_eq!(at_once.status, StatusCode::OK);
    assert_eq!(
        at_once.body["thread"]["version"], 1,
        "already above since: no wait"
    );

    let wait_path = format!("{path}?wait=30");
    let started = std::time::Instant::now();
    let (waited, claimed) = futures::join!(
        call(&app, Method::GET, &wait_path, Some(&agent), None),
        async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            call(
                &app,
                Method::PATCH,
                &path,
                Some(&phone),
                Some(json!({"status": "claimed"})),
            )
            .await
        }
    );
    assert_eq!(claimed.status, StatusCode::OK);
    assert_eq!(waited.status, StatusCode::OK);
    assert_eq!(waited.body["thread"]["version"], 2, "{:?}", waited.body);
    assert_eq!(waited.body["thread"]["status"], "claimed");
    assert_eq!(waited.headers.get("etag").unwrap(), "\"2\"");
    // Woken by the change, not by its 30 s running out.
    assert!(started.elapsed() < Duration::from_secs(20));

    // Nothing changes: the thread as it is once the wait is over (never a 304).
    let req = test::TestRequest::get()
        .uri(&format!("{path}?wait=1"))
        .insert_header(("Authorization", format!("Bearer {agent}")))
        .insert_header(("If-None-Match", "\"2\""))
        .to_request();
    let idle = to_res(test::call_service(&app, req).await).await;
    assert_eq!(idle.status, StatusCode::OK);
    assert_eq!(idle.body["thread"]["version"], 2);

    for q in [
        "wait=61",
        "wait=-1",
        "wait=x",
        "wait=",
        "since=1",
        "wait=5&since=-2",
    ] {
        let bad = call(
            &app,
            Method::GET,
            &format!("{path}?{q}"),
            Some(&agent),
            None,
        )
        .await;
        assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(bad.body["code"], "invalid_request", "{q}");
    }
}

#[actix_web::test]
async fn a_test_notification_reports_each_own_channel_and_only_ones_own() {
    let storage = Arc::new(MemStorage::default());
    let app = app!(storage.clone());
    let me = register(&app, "home", "phone").await;
    let other = register(&app, "home", "other").await;
    let profile = format!("{HOME}/executors/phone");
    let channels = json!({"notifications": [
        {"type": "webhook", "url": "https://hooks.example.com/in", "secret": "hush"},
        {"type": "ntfy", "topic": "phone-topic"},
    ]});
    let r = call(&app, Method::PATCH, &profile, Some(&me), Some(channels)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let path = format!("{profile}/test-notification");
    let theirs = call(&app, Method::POST, &path, Some(&other), None).await;
    assert_eq!(theirs.status, StatusCode::FORBIDDEN);
    // This app's notifier sends nothing, and says so for each channel, in order.
    let r = call(&app, Method::POST, &path, Some(&me), None).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let results = r.body["results"].as_array().unwrap();
    let kinds: Vec<&str> = results
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["webhook", "ntfy"]);
    assert!(
        results
            .iter()
            .all(|c| c["ok"] == false && c["error"].is_string())
    );
    assert!(!r.body.to_string().contains("hush") && !r.body.to_string().contains("hooks.example"));
    let get = call(&app, Method::GET, &path, Some(&me), None).await;
    assert_eq!(get.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn a_profile_patch_keeps_a_stored_channel_by_position_with_its_secret() {
    let storage = Arc::new(MemStorage::default());
    let app = app!(storage.clone());
    let me = register(&app, "home", "phone").await;
    let profile = format!("{HOME}/executors/phone");
    let first = json!({"notifications": [
        {"type": "ntfy", "topic": "old-topic"},
        {"type": "webhook", "url": "https://hooks.example.com/in", "secret": "hush"},
    ]});
    let r = call(&app, Method::PATCH, &profile, Some(&me), Some(first)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let edit = json!({"notifications": [{"keep": 1}, {"type": "slack", "webhook_url": "https://chat.example.com/x"}]});
    let r = call(&app, Method::PATCH, &profile, Some(&me), Some(edit)).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let stored = storage.load().await.unwrap();
    let phone = stored
        .members
        .iter()
        .find(|m| m.executor_id.as_str() == "phone")
        .unwrap();
    let shown = serde_json::to_value(&phone.notifications).unwrap();
    assert_eq!(shown[0]["type"], "webhook");
    assert_eq!(shown[0]["url"], "https://hooks.example.com/in");
    assert_eq!(shown[0]["secret"], "hush");
    assert_eq!(shown[1]["type"], "slack");
    assert_eq!(phone.notifications.len(), 2);
    let bad = json!({"notifications": [{"keep": 5}]});
    let r = call(&app, Method::PATCH, &profile, Some(&me), Some(bad)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
}

/// A request with `headers` set, answered.
async fn get_with<S, B>(app: &S, path: &str, key: &str, headers: &[(&str, &str)]) -> Res
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::get()
        .uri(path)
        .insert_header(("Authorization", format!("Bearer {key}")));
    for (name, value) in headers {
        req = req.insert_header((*name, *value));
    }
    to_res(test::call_service(app, req.to_request()).await).await
}

#[actix_web::test]
async fn photos_are_stored_once_as_blobs_and_read_back_as_sent() {
    use base64::Engine;
    let storage = Arc::new(MemStorage::default());
    let app = app!(Arc::clone(&storage));
    let agent = register(&app, "home", "agent").await;
    let phone = register(&app, "home", "phone").await;
    let photo: Vec<u8> = (0..30_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let uri = format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&photo)
    );
    let small = "data:image/png;base64,aGVsbG8=";
    let r = create(
        &app,
        &agent,
        json!({"intent": "Photo of the shelf", "context": ["like this one:", uri.clone()]}),
    )
    .await;
    let path = format!("{HOME}/requests/{r}");
    call(
        &app,
        Method::PATCH,
        &path,
        Some(&phone),
        Some(json!({"status": "claimed"})),
    )
    .await;
    let done = call(
        &app,
        Method::PATCH,
        &path,
        Some(&phone),
        Some(
            json!({"status": "completed", "mess": [{"response": {"content": [
            "here", {"image": uri.clone()}, small]}}]}),
        ),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.body);
    let msgs = &done.body["thread"]["messages"];
    assert_eq!(
        msgs[2]["mess"][1]["response"]["content"][1]["image"],
        json!(uri),
        "the PATCH answer is seed-shaped"
    );

    // The log holds references, never the bytes; the blob is stored once.
    let log = serde_json::to_string(&*storage.events.lock().unwrap()).unwrap();
    assert!(
        !log.contains(&uri[..200]),
        "no photo bytes in the event log"
    );
    assert_eq!(log.matches(mess_core::blob::PREFIX).count(), 2, "{log}");
    assert!(log.contains(small), "small data URIs stay inline");
    assert_eq!(storage.blobs.lock().unwrap().len(), 1);

    // Seed-shaped GET: the data URIs, exactly as sent.
    let got = get_with(&app, &path, &agent, &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    let m = &got.body["thread"]["messages"];
    assert_eq!(m[0]["mess"][0]["request"]["context"][1], json!(uri));
    assert_eq!(
        m[2]["mess"][1]["response"]["content"][1]["image"],
        json!(uri)
    );
    assert_eq!(m[2]["mess"][1]["response"]["content"][2], json!(small));
    let version = got.body["thread"]["version"].as_u64().unwrap();
    assert_eq!(got.headers.get("etag").unwrap(), &format!("\"{version}\""));

    // With ?attachments=links: links, numbered in document order, and its own ETag.
    let links = get_with(&app, &format!("{path}?attachments=links"), &agent, &[]).await;
    assert_eq!(links.status, StatusCode::OK);
    let base = format!("{HOME}/requests/{r}/attachments/");
    let m = &links.body["thread"]["messages"];
    assert_eq!(
        m[0]["mess"][0]["request"]["context"][1],
        json!(format!("{base}1"))
    );
    assert_eq!(
        m[2]["mess"][1]["response"]["content"][1]["image"],
        json!(format!("{base}2"))
    );
    assert_eq!(
        m[2]["mess"][1]["response"]["content"][2],
        json!(format!("{base}3"))
    );
    assert_eq!(
        links.headers.get("etag").unwrap(),
        &format!("\"{version}-links\"")
    );
    assert!(links.raw.len() < 3000, "{}", links.raw.len());
    let bad = get_with(&app, &format!("{path}?attachments=everything"), &agent, &[]).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // The attachment route: bytes, type, ETag, ranges.
    let whole = get_with(&app, &format!("{base}2"), &agent, &[]).await;
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.raw, photo);
    assert_eq!(whole.headers.get("content-type").unwrap(), "image/jpeg");
    assert_eq!(whole.headers.get("accept-ranges").unwrap(), "bytes");
    let etag = whole
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(etag, format!("\"{}\"", mess_core::blob::sha256_hex(&photo)));
    let by_name = get_with(&app, &format!("{base}image"), &agent, &[]).await;
    assert_eq!(by_name.raw, photo);
    let part = get_with(
        &app,
        &format!("{base}2"),
        &agent,
        &[("Range", "bytes=100-199")],
    )
    .await;
    assert_eq!(part.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(part.raw, &photo[100..200]);
    assert_eq!(
        part.headers.get("content-range").unwrap(),
        "bytes 100-199/30000"
    );
    let tail = get_with(&app, &format!("{base}2"), &agent, &[("Range", "bytes=-10")]).await;
    assert_eq!(tail.raw, &photo[photo.len() - 10..]);
    let past = get_with(
        &app,
        &format!("{base}2"),
        &agent,
        &[("Range", "bytes=30000-")],
    )
    .await;
    assert_eq!(past.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(past.body["code"], "range_not_satisfiable");
    assert_eq!(past.headers.get("content-range").unwrap(), "bytes */30000");
    let same = get_with(
        &app,
        &format!("{base}2"),
        &agent,
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(same.status, StatusCode::NOT_MODIFIED);
    assert!(same.raw.is_empty());
    let inline = get_with(&app, &format!("{base}3"), &agent, &[]).await;
    assert_eq!(
        inline.raw, b"hello",
        "inline attachments are served as before"
    );

    // A client cannot pose a reference: it would name a blob it never had.
    let forged = format!(
        "{}{}:image/jpeg;base64",
        mess_core::blob::PREFIX,
        mess_core::blob::sha256_hex(&photo)
    );
    let r2 = create(&app, &phone, json!({"intent": "mine"})).await;
    let refused = call(
        &app,
        Method::PATCH,
        &format!("{HOME}/requests/{r2}"),
        Some(&phone),
        Some(json!({"mess": [{"response": {"content": [forged]}}]})),
    )
    .await;
    assert_eq!(
        refused.status,
        StatusCode::BAD_REQUEST,
        "{:?}",
        refused.body
    );
    assert!(refused.body["error"].as_str().unwrap().contains("reserved"));

    // A PATCH under an Idempotency-Key: the kept answer holds the reference, and a replay
    // answers the photo, as the first answer did.
    let r3 = create(&app, &agent, json!({"intent": "another photo"})).await;
    let patch = |key: &str| {
        test::TestRequest::patch()
            .uri(&format!("{HOME}/requests/{r3}"))
            .insert_header(("Authorization", format!("Bearer {agent}")))
            .insert_header(("Idempotency-Key", key.to_owned()))
            .set_json(json!({"mess": [{"reply": {"content": [{"image": uri.clone()}]}}]}))
            .to_request()
    };
    let first = to_res(test::call_service(&app, patch("photo-1")).await).await;
    let again = to_res(test::call_service(&app, patch("photo-1")).await).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.raw, first.raw);
    assert_eq!(
        again.body["thread"]["messages"][1]["mess"][0]["reply"]["content"][0]["image"],
        json!(uri)
    );
    let kept = storage
        .answers
        .lock()
        .unwrap()
        .values()
        .map(|a| a.len())
        .max()
        .unwrap();
    assert!(
        kept < 5_000,
        "the kept answer holds a reference, not the photo: {kept} bytes"
    );

    // After a restart the references still lead to the bytes.
    drop(app);
    let app = app!(Arc::clone(&storage));
    let again = get_with(&app, &path, &agent, &[]).await;
    assert_eq!(
        again.body["thread"]["messages"][2]["mess"][1]["response"]["content"][1]["image"],
        json!(uri)
    );
}
