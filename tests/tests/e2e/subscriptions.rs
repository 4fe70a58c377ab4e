//! Subscriptions with the npm `graphql-ws` client over a real WebSocket:
//! events as orders are placed (the webhook's payload, filters, resuming
//! with `after`), what a customer and an anonymous client get, sockets
//! closed when their token expires or is ended, the limits, a job followed
//! to its end, and an event written on one PostgreSQL node reaching a
//! subscriber on another.

use entity::user::StaffRole;
use keysmith::auth::Role;
use keysmith_tests::app::{config, fresh_database};
use keysmith_tests::npm::Subscriber;
use keysmith_tests::{Backend, TestApp, data, on_both_databases};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

on_both_databases!(
    staff_see_orders_events_as_they_commit_and_resume_after_one,
    a_customer_sees_only_their_own_and_no_token_sees_nothing,
    a_socket_closes_when_its_token_expires_or_is_ended,
    a_connection_holds_a_bounded_number_of_subscriptions,
    a_job_is_followed_to_its_end,
    an_idle_connection_is_pinged_and_answers,
    client_calls_over_the_socket_keep_their_address_limits,
);

const EVENTS: &str = "subscription($f: EventFilter, $after: ID) { events(filter: $f, after: $after) { id type environment createdAt data } }";

/// A product delivering generated keys; its id.
async fn product(app: &TestApp, admin: &str, name: &str) -> String {
    let made = app
        .graphql(
            Some(admin),
            "mutation($n: String!) { createProduct(input: {name: $n, delivery: {mode: AUTO_GENERATED}}) { product { id } } }",
            json!({ "n": name }),
        )
        .await;
    data(&made)["createProduct"]["product"]["id"].as_str().expect("product").to_string()
}

/// Places order `external` of one unit of `product` for `email`; the order's and its customer's ids.
async fn order(app: &TestApp, admin: &str, external: &str, email: &str, product: &str) -> (String, String) {
    let placed = app
        .graphql(
            Some(admin),
            "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, customer: {email: $e}, \
             lines: [{productId: $p, quantity: 1}], emailCustomer: false}) { order { id status customer { id } } } }",
            json!({ "x": external, "e": email, "p": product }),
        )
        .await;
    let placed = &data(&placed)["createOrder"]["order"];
    assert_eq!(placed["status"], "FULFILLED", "{placed}");
    (placed["id"].as_str().expect("id").to_string(), placed["customer"]["id"].as_str().expect("customer").to_string())
}

/// The id of the newest event of `kind` in the outbox.
async fn newest_event(app: &TestApp, kind: &str) -> String {
    entity::event::Entity::find()
        .filter(entity::event::Column::Kind.eq(kind))
        .order_by_desc(entity::event::Column::Id)
        .one(app.db())
        .await
        .expect("read the outbox")
        .expect("an event")
        .id
}

fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

async fn staff_see_orders_events_as_they_commit_and_resume_after_one(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let studio = product(&app, &admin, "Photo Studio").await;
    let (first, _) = order(&app, &admin, "SUB-1", "ada@example.com", &studio).await;
    let created = newest_event(&app, "order.created").await;

    // Resuming after the first order's `order.created`: its key and its
    // fulfilment come first, then what happens live.
    let filter = json!({ "types": ["ORDER_CREATED", "ORDER_FULFILLED", "LICENSE_ASSIGNED"] });
    let Some(mut sub) =
        Subscriber::start(&app, Some(&admin), 1, EVENTS, json!({ "f": filter, "after": created })).await
    else {
        return;
    };
    sub.until("the first order's fulfilment", |l| l["next"]["data"]["events"]["type"] == "ORDER_FULFILLED").await;
    let replayed = sub.events(0);
    assert!(replayed.iter().all(|e| e["id"] != created.as_str()), "not the event resumed after: {replayed:#?}");
    let assigned = of_type(&replayed, "LICENSE_ASSIGNED");
    assert_eq!(assigned.len(), 1, "{replayed:#?}");
    assert_eq!(assigned[0]["data"]["orderId"], first.as_str());

    let (second, customer) = order(&app, &admin, "SUB-2", "grace@example.com", &studio).await;
    sub.until("the second order's fulfilment", |l| {
        l["next"]["data"]["events"]["type"] == "ORDER_FULFILLED"
            && l["next"]["data"]["events"]["data"]["externalId"] == "SUB-2"
    })
    .await;
    let events = sub.events(0);
    let created = of_type(&events, "ORDER_CREATED");
    assert_eq!(created.len(), 1, "one order.created since the one resumed after: {events:#?}");
    let created = created[0];
    // The webhook's body: id, type, environment, createdAt and the same data.
    assert_eq!(created["environment"], "PRODUCTION");
    assert_eq!(created["data"]["externalId"], "SUB-2");
    assert_eq!(created["data"]["customerId"], customer.as_str());
    assert_eq!(created["data"]["lines"][0]["productId"], studio.as_str());
    let stored = entity::event::Entity::find_by_id(created["id"].as_str().expect("id").to_string())
        .one(app.db())
        .await
        .expect("read")
        .expect("the event is the outbox's");
    assert_eq!(stored.payload, created["data"], "the same payload webhooks deliver");
    assert_eq!(
        of_type(&events, "LICENSE_ASSIGNED").iter().filter(|e| e["data"]["orderId"] == second.as_str()).count(),
        1
    );
    assert!(events.iter().all(|e| e["type"] != "LICENSE_ACTIVATED"), "only the types asked for");

    // A filter on one order sees only that order's events.
    let only = json!({ "orderId": second });
    let Some(mut narrow) = Subscriber::start(
        &app,
        Some(&admin),
        1,
        EVENTS,
        json!({ "f": only, "after": newest_event(&app, "order.created").await }),
    )
    .await
    else {
        return;
    };
    narrow.until("the key of the second order", |l| l["next"]["data"]["events"]["type"] == "LICENSE_ASSIGNED").await;
    order(&app, &admin, "SUB-3", "alan@example.com", &studio).await;
    let (_, _) = order(&app, &admin, "SUB-4", "alan@example.com", &studio).await;
    // The other orders' events reach the broad subscriber, never the narrow one.
    sub.until("the fourth order", |l| l["next"]["data"]["events"]["data"]["externalId"] == "SUB-4").await;
    narrow.stop(0).await;
    narrow.until("the narrow subscription's end", |l| l["complete"] == true).await;
    let seen = narrow.events(0);
    assert!(!seen.is_empty());
    for e in &seen {
        let about_second = e["data"]["orderId"] == second.as_str() || e["data"]["externalId"] == "SUB-2";
        assert!(about_second, "only the second order's events: {seen:#?}");
    }
}

async fn a_customer_sees_only_their_own_and_no_token_sees_nothing(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let studio = product(&app, &admin, "Photo Studio").await;
    let (_, ada) = order(&app, &admin, "MINE-1", "ada@example.com", &studio).await;
    let token = app.customer_token(&ada).await;
    let after = newest_event(&app, "order.fulfilled").await;
    let Some(mut mine) = Subscriber::start(&app, Some(&token), 1, EVENTS, json!({ "after": after })).await else {
        return;
    };
    mine.until("connected", |l| l["connected"] == true).await;
    order(&app, &admin, "THEIRS-1", "grace@example.com", &studio).await;
    order(&app, &admin, "MINE-2", "ada@example.com", &studio).await;
    mine.until("Ada's second order", |l| l["next"]["data"]["events"]["type"] == "ORDER_FULFILLED").await;
    let events = mine.events(0);
    assert!(!events.is_empty());
    for e in &events {
        assert_eq!(e["data"]["customerId"], ada.as_str(), "only Ada's own: {events:#?}");
    }
    assert!(events.iter().all(|e| e["data"]["externalId"] != "THEIRS-1"));

    // No token: closed at once with 4401; a token that is not one: 4403.
    let Some(mut anonymous) = Subscriber::start(&app, None, 1, EVENTS, json!({})).await else { return };
    assert_eq!(anonymous.closed().await, 4401);
    let Some(mut forged) = Subscriber::start(&app, Some("not-a-token"), 1, EVENTS, json!({})).await else { return };
    assert_eq!(forged.closed().await, 4403);

    // Only graphql-transport-ws: the legacy subprotocol is refused at the handshake.
    for (protocol, status) in [("graphql-ws", 400), ("graphql-transport-ws", 101)] {
        let handshake = app
            .http
            .get(app.url("/graphql"))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .header("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("Sec-WebSocket-Protocol", protocol)
            .send()
            .await
            .expect("an answer");
        assert_eq!(handshake.status().as_u16(), status, "{protocol}");
    }
}

async fn a_socket_closes_when_its_token_expires_or_is_ended(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let claims = app.state.jwt.verify(&admin).expect("the admin's claims");
    // A token that expires six seconds from now.
    let (short, _) = app.state.jwt.issue(&claims.sub, Role::Admin, None, claims.ver, 6).expect("a short token");
    let Some(mut expiring) = Subscriber::start(&app, Some(&short), 1, EVENTS, json!({})).await else { return };
    expiring.until("connected", |l| l["connected"] == true).await;
    assert_eq!(expiring.closed().await, 4401, "expired");

    // A support member whose role changes: their token ends, so does the socket.
    let support = app.staff_token(StaffRole::Support).await;
    let support_id = app.state.jwt.verify(&support).expect("claims").sub;
    let Some(mut ended) = Subscriber::start(&app, Some(&support), 1, EVENTS, json!({})).await else { return };
    ended.until("connected", |l| l["connected"] == true).await;
    let changed = app
        .graphql(
            Some(&admin),
            "mutation($id: ID!) { updateUser(input: {id: $id, role: MANAGER}) { user { role } } }",
            json!({ "id": support_id }),
        )
        .await;
    assert_eq!(data(&changed)["updateUser"]["user"]["role"], "MANAGER");
    assert_eq!(ended.closed().await, 4403, "ended");
}

async fn a_connection_holds_a_bounded_number_of_subscriptions(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let limit = keysmith::http::SUBSCRIPTIONS_PER_CONNECTION;
    let Some(mut many) = Subscriber::start(&app, Some(&admin), limit + 1, EVENTS, json!({})).await else { return };
    let refused = many.until("a refusal", |l| l["next"]["errors"].is_array()).await;
    assert_eq!(refused["next"]["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{refused}");
    // The others stand: an order reaches all of them, and only one was refused.
    let studio = product(&app, &admin, "Photo Studio").await;
    order(&app, &admin, "MANY-1", "ada@example.com", &studio).await;
    for id in 0..=limit as u64 {
        if id == refused["id"].as_u64().expect("id") {
            continue;
        }
        many.until("the order on every subscription", |l| {
            l["id"] == id && l["next"]["data"]["events"]["type"] == "ORDER_CREATED"
        })
        .await;
    }
    let refusals = many.seen.iter().filter(|l| l["next"]["errors"].is_array()).count();
    assert_eq!(refusals, 1, "one refusal, past the limit");

    // Across one token's connections: at most PER_TOKEN at once. `many`
    // holds `limit`; more connections ask for more than the rest.
    let per_token = keysmith::graphql::subscription::PER_TOKEN;
    let connections = per_token.div_ceil(limit) + 1;
    let after = newest_event(&app, "order.created").await;
    let mut others = Vec::new();
    for _ in 0..connections {
        let Some(other) = Subscriber::start(&app, Some(&admin), limit, EVENTS, json!({ "after": after })).await else {
            return;
        };
        others.push(other);
    }
    order(&app, &admin, "MANY-2", "ada@example.com", &studio).await;
    // Each subscription either runs (and sees the order) or is refused.
    let settled = |l: &Value| {
        l["next"]["errors"].is_array()
            || (l["next"]["data"]["events"]["type"] == "ORDER_CREATED"
                && l["next"]["data"]["events"]["data"]["externalId"] == "MANY-2")
    };
    let mut refused_by_token = 0;
    for other in &mut others {
        other.until_count(limit, settled).await;
        for line in other.seen.iter().filter(|l| l["next"]["errors"].is_array()) {
            assert_eq!(line["next"]["errors"][0]["extensions"]["code"], "RATE_LIMITED", "{line}");
            refused_by_token += 1;
        }
    }
    assert_eq!(refused_by_token, connections * limit - (per_token - limit), "the token's limit");

    // A message larger than a request body may be closes the socket (1009, too big).
    let huge = format!("subscription {{ events {{ id }} }} # {}", "x".repeat(80 * 1024));
    let Some(mut oversized) = Subscriber::start(&app, Some(&admin), 1, &huge, json!({})).await else { return };
    assert_eq!(oversized.closed().await, 1009);
    // The server carries on.
    let alive = app.graphql(Some(&admin), "{ me { role } }", json!({})).await;
    assert_eq!(data(&alive)["me"]["role"], "ADMIN");
}

async fn a_job_is_followed_to_its_end(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let studio = product(&app, &admin, "Photo Studio").await;
    let generator = app
        .graphql(
            Some(&admin),
            "mutation { createGenerator(input: {name: \"Default\"}) { generator { id } } }",
            json!({}),
        )
        .await;
    let generator = data(&generator)["createGenerator"]["generator"]["id"].clone();
    let started = app
        .graphql(
            Some(&admin),
            "mutation($g: ID!, $p: ID!) { generateLicenses(input: {generatorId: $g, productId: $p, count: 3000}) { job { id } } }",
            json!({ "g": generator, "p": studio }),
        )
        .await;
    let job = data(&started)["generateLicenses"]["job"]["id"].as_str().expect("job").to_string();
    let query = "subscription($id: ID!) { jobProgress(id: $id) { id status progress total } }";
    let Some(mut sub) = Subscriber::start(&app, Some(&admin), 1, query, json!({ "id": job })).await else { return };
    sub.until("the job's end", |l| l["complete"] == true).await;
    let updates: Vec<&Value> = sub.seen.iter().filter_map(|l| l["next"]["data"].get("jobProgress")).collect();
    let last = updates.last().expect("at least one update");
    assert_eq!(last["status"], "SUCCEEDED", "{updates:#?}");
    assert_eq!(last["progress"], last["total"], "{updates:#?}");
    assert!(updates.iter().all(|u| u["id"] == job.as_str()));
}

/// The server pings a quiet connection (every 15 s); the client's pongs
/// keep it open past the silence limit's first checks.
async fn an_idle_connection_is_pinged_and_answers(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let Some(mut idle) = Subscriber::start(&app, Some(&admin), 1, EVENTS, json!({})).await else { return };
    idle.until("connected", |l| l["connected"] == true).await;
    idle.until_within("a ping", std::time::Duration::from_secs(40), |l| l["ping"] == true).await;
    // Still open: an order reaches it.
    let studio = product(&app, &admin, "Photo Studio").await;
    order(&app, &admin, "IDLE-1", "ada@example.com", &studio).await;
    idle.until("the order", |l| l["next"]["data"]["events"]["data"]["externalId"] == "IDLE-1").await;
    assert!(idle.seen.iter().all(|l| l.get("closed").is_none()));
}

/// A client call sent over the socket counts against the connecting
/// address's budget, as it does over HTTP.
async fn client_calls_over_the_socket_keep_their_address_limits(app: TestApp) {
    let admin = app.staff_token(StaffRole::Admin).await;
    let limits = "mutation { updateSettings(input: {rateLimitPerAddress: 2, rateLimitPerKey: 0}) { settings { rateLimitPerAddress } } }";
    let set = app.graphql(Some(&admin), limits, json!({})).await;
    assert_eq!(data(&set)["updateSettings"]["settings"]["rateLimitPerAddress"], 2);
    let customer = app.customer_token(&entity::new_id()).await;
    let validate = "mutation { validateLicense(input: {key: \"NO-SUCH-KEY\"}) { code } }";
    let Some(mut calls) = Subscriber::start(&app, Some(&customer), 4, validate, json!({})).await else { return };
    let answered = |l: &Value| l["next"]["data"]["validateLicense"]["code"].is_string();
    calls.until_count(4, answered).await;
    let codes: Vec<&str> = calls
        .seen
        .iter()
        .filter(|l| answered(l))
        .filter_map(|l| l["next"]["data"]["validateLicense"]["code"].as_str())
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == "NOT_FOUND").count(), 2, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == "RATE_LIMITED").count(), 2, "{codes:?}");
}

/// Two nodes on one PostgreSQL database: an order placed through the first
/// reaches a subscriber connected to the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_on_one_node_reaches_a_subscriber_on_another_postgres() {
    let dir = tempfile::tempdir().expect("dir");
    let Some(url) = fresh_database(Backend::Postgres, dir.path()).await else { return };
    let first = TestApp::spawn_with(Backend::Postgres, config(&url), dir).await;
    let second = TestApp::spawn_with(Backend::Postgres, config(&url), tempfile::tempdir().expect("dir")).await;
    let admin = first.staff_token(StaffRole::Admin).await;
    let studio = product(&first, &admin, "Photo Studio").await;
    let (_, _) = order(&first, &admin, "NODE-0", "ada@example.com", &studio).await;
    let after = newest_event(&first, "order.fulfilled").await;
    let Some(mut sub) = Subscriber::start(&second, Some(&admin), 1, EVENTS, json!({ "after": after })).await else {
        return;
    };
    sub.until("connected", |l| l["connected"] == true).await;
    order(&first, &admin, "NODE-1", "ada@example.com", &studio).await;
    sub.until("the order placed on the other node", |l| l["next"]["data"]["events"]["data"]["externalId"] == "NODE-1")
        .await;
}
