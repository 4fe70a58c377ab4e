//! Every mutation × every role: who may, who is forbidden, who must sign in.
//! A mutation added to the schema without a row here fails
//! `every_mutation_has_a_row_in_the_role_matrix`.

use entity::user::StaffRole;
use entity::{Environment, LicenseStatus};
use keysmith_tests::app::TEST_PASSWORD;
use keysmith_tests::app::seed;
use keysmith_tests::{TestApp, data, error_code, on_both_databases};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Allowed,
    /// Allowed on the caller's own records only: another customer's record
    /// answers `NOT_FOUND`, as a missing one would.
    OwnOnly,
    Forbidden,
    Unauthenticated,
}
use Outcome::{Allowed, Forbidden, OwnOnly, Unauthenticated};

const ROLES: [&str; 5] = ["admin", "manager", "support", "customer", "anonymous"];

/// (mutation, outcome for admin, manager, support, customer, anonymous)
pub(crate) const MATRIX: &[(&str, [Outcome; 5])] = &[
    ("createProduct", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("updateProduct", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("archiveProduct", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("createGenerator", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("updateGenerator", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("deleteGenerator", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("createCustomer", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("updateCustomer", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("createLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("generateLicenses", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("updateLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("assignLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("returnLicenseToPool", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("inactivateLicense", [Allowed, Allowed, Allowed, Forbidden, Unauthenticated]),
    ("reactivateLicense", [Allowed, Allowed, Allowed, Forbidden, Unauthenticated]),
    ("suspendLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("unsuspendLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("renewLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("revokeLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("deleteLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("createTag", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("renameTag", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("deleteTag", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("importLicenseKeys", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("tagLicenseKeys", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("untagLicenseKeys", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("moveLicenseKeys", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("deleteLicenseKeys", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("cleanUpDuplicates", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("updateSettings", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("createOrder", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("reassignOrderKey", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("unassignLicense", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    ("refundOrder", [Allowed, Allowed, Forbidden, Forbidden, Unauthenticated]),
    // Signing in is open to anyone; the outcome is then decided by the credentials.
    ("login", [Allowed, Allowed, Allowed, Allowed, Allowed]),
    // Shipped software validates, activates and deactivates keys without signing in.
    ("validateLicense", [Allowed, Allowed, Allowed, Allowed, Allowed]),
    ("activateLicense", [Allowed, Allowed, Allowed, Allowed, Allowed]),
    ("deactivateLicense", [Allowed, Allowed, Allowed, Allowed, Allowed]),
    // Support and up end any device; a customer their own.
    ("deactivateActivation", [Allowed, Allowed, Allowed, OwnOnly, Unauthenticated]),
    ("createWebhookEndpoint", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("updateWebhookEndpoint", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("deleteWebhookEndpoint", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("redeliverWebhook", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("createIntegration", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("updateIntegration", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("deleteIntegration", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("replayIntegrationEvent", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("createUser", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    ("updateUser", [Allowed, Forbidden, Forbidden, Forbidden, Unauthenticated]),
    // The portal: anyone asks for a sign-in link (the answer is the same
    // for any email) or spends one; support and up hand links over.
    ("requestPortalLink", [Allowed, Allowed, Allowed, Allowed, Allowed]),
    ("createPortalLink", [Allowed, Allowed, Allowed, Forbidden, Unauthenticated]),
    ("signInWithPortalLink", [Allowed, Allowed, Allowed, Allowed, Allowed]),
    // Staff see any key; a customer their own.
    ("revealLicenseKey", [Allowed, Allowed, Allowed, OwnOnly, Unauthenticated]),
    // Near the end: these end the caller's tokens, which the walks over this list use.
    ("changePassword", [Allowed, Allowed, Allowed, Forbidden, Unauthenticated]),
    // Any staff member ends their own session (a bearer token has none to end).
    ("signOut", [Allowed, Allowed, Allowed, Forbidden, Unauthenticated]),
    // Last: it ends the customer's session, which the rows above use.
    ("signOutOfPortal", [Allowed, Allowed, Allowed, Allowed, Unauthenticated]),
];

/// A request exercising `mutation`, valid for a caller who may run it.
pub(crate) async fn request_for(app: &TestApp, admin: &str, mutation: &str) -> (String, Value) {
    let product_id = || async {
        let body = app
            .graphql(
                Some(admin),
                "mutation($n: String!) { createProduct(input: {name: $n}) { product { id } } }",
                json!({ "n": format!("p-{}", ulid::Ulid::generate()) }),
            )
            .await;
        data(&body)["createProduct"]["product"]["id"].clone()
    };
    let tag_id = || async {
        let body = app
            .graphql(
                Some(admin),
                "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }",
                json!({ "n": format!("t-{}", ulid::Ulid::generate().to_string().to_lowercase()) }),
            )
            .await;
        data(&body)["createTag"]["tag"]["id"].clone()
    };
    let key_id = |tag: Value| async move {
        let body = app
            .graphql(
                Some(admin),
                "mutation($t: [ID!]!, $k: String!) { importLicenseKeys(input: {text: $k, tagIds: $t}) { imported } }",
                json!({ "t": [tag.clone()], "k": format!("K-{}", ulid::Ulid::generate()) }),
            )
            .await;
        assert_eq!(data(&body)["importLicenseKeys"]["imported"], 1);
        let listed = app
            .graphql(
                Some(admin),
                "query($t: ID!) { tag(id: $t) { keys { edges { node { id } } } } }",
                json!({ "t": tag }),
            )
            .await;
        data(&listed)["tag"]["keys"]["edges"][0]["node"]["id"].clone()
    };
    let tag_mutation = |name: &str| {
        format!("mutation($t: ID!, $k: [ID!]!) {{ {name}(input: {{tagId: $t, keyIds: $k}}) {{ keysChanged }} }}")
    };
    let generator_id = || async {
        let body = app
            .graphql(
                Some(admin),
                "mutation($n: String!) { createGenerator(input: {name: $n}) { generator { id } } }",
                json!({ "n": format!("g-{}", ulid::Ulid::generate()) }),
            )
            .await;
        data(&body)["createGenerator"]["generator"]["id"].clone()
    };
    let customer_id = || async {
        let body = app
            .graphql(
                Some(admin),
                "mutation($e: String!) { createCustomer(input: {email: $e}) { customer { id } } }",
                json!({ "e": format!("c-{}@example.com", ulid::Ulid::generate().to_string().to_lowercase()) }),
            )
            .await;
        data(&body)["createCustomer"]["customer"]["id"].clone()
    };
    let licence = |status: LicenseStatus| async move {
        let id =
            seed::key(app.db(), Environment::Production, &format!("L-{}", ulid::Ulid::generate()), status, &[]).await;
        json!(id)
    };
    // An order of one auto-generated key: (order id, line id, key id).
    let order = || async {
        let product = product_id().await;
        let body = app
            .graphql(
                Some(admin),
                "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, \
                 customer: {email: $e}, lines: [{productId: $p, quantity: 1}]}) \
                 { order { id lines { id keys { id } } } } }",
                json!({
                    "x": format!("x-{}", ulid::Ulid::generate()),
                    "e": format!("o-{}@example.com", ulid::Ulid::generate().to_string().to_lowercase()),
                    "p": product,
                }),
            )
            .await;
        let order = &data(&body)["createOrder"]["order"];
        let line = &order["lines"][0];
        (order["id"].clone(), line["id"].clone(), line["keys"][0]["id"].clone())
    };
    let by_id = |name: &str| format!("mutation($id: ID!) {{ {name}(input: {{id: $id}}) {{ license {{ id }} }} }}");
    match mutation {
        "requestPortalLink" => {
            let customer = customer_id().await;
            let found = app
                .graphql(Some(admin), "query($id: ID!) { customer(id: $id) { email } }", json!({ "id": customer }))
                .await;
            (
                "mutation($e: String!) { requestPortalLink(input: {email: $e}) { message } }".into(),
                json!({ "e": data(&found)["customer"]["email"] }),
            )
        }
        "createPortalLink" => (
            "mutation($id: ID!) { createPortalLink(input: {customerId: $id}) { url expiresAt } }".into(),
            json!({ "id": customer_id().await }),
        ),
        "signInWithPortalLink" => {
            let link = app
                .graphql(
                    Some(admin),
                    "mutation($id: ID!) { createPortalLink(input: {customerId: $id}) { url } }",
                    json!({ "id": customer_id().await }),
                )
                .await;
            let url = data(&link)["createPortalLink"]["url"].as_str().expect("a link").to_string();
            let token = url.rsplit('/').next().expect("a token").to_string();
            (
                "mutation($t: String!) { signInWithPortalLink(input: {token: $t}) { token expiresAt } }".into(),
                json!({ "t": token }),
            )
        }
        "revealLicenseKey" => {
            let (_, _, key) = order().await;
            (
                "mutation($id: ID!) { revealLicenseKey(input: {licenseId: $id}) { key status } }".into(),
                json!({ "id": key }),
            )
        }
        "signOutOfPortal" => ("mutation { signOutOfPortal { signedOut } }".into(), json!({})),
        "signOut" => ("mutation { signOut { signedOut } }".into(), json!({})),
        "createCustomer" => (
            "mutation($e: String!) { createCustomer(input: {email: $e}) { customer { id } } }".into(),
            json!({ "e": format!("c-{}@example.com", ulid::Ulid::generate().to_string().to_lowercase()) }),
        ),
        "updateCustomer" => (
            "mutation($id: ID!) { updateCustomer(input: {id: $id, name: \"New\"}) { customer { id } } }".into(),
            json!({ "id": customer_id().await }),
        ),
        "createLicense" => (
            "mutation($p: ID!, $g: ID!) { createLicense(input: {productId: $p, generatorId: $g}) { license { id } } }"
                .into(),
            json!({ "p": product_id().await, "g": generator_id().await }),
        ),
        "generateLicenses" => (
            "mutation($p: ID!, $g: ID!) { generateLicenses(input: {productId: $p, generatorId: $g, count: 3}) { job { id } } }".into(),
            json!({ "p": product_id().await, "g": generator_id().await }),
        ),
        "updateLicense" => (
            "mutation($id: ID!) { updateLicense(input: {id: $id, activationLimit: 2}) { license { id } } }".into(),
            json!({ "id": licence(LicenseStatus::Available).await }),
        ),
        "assignLicense" => (
            "mutation($id: ID!, $c: ID!) { assignLicense(input: {id: $id, customerId: $c}) { license { id } } }".into(),
            json!({ "id": licence(LicenseStatus::Available).await, "c": customer_id().await }),
        ),
        "returnLicenseToPool" => (by_id(mutation), json!({ "id": licence(LicenseStatus::Assigned).await })),
        "inactivateLicense" | "suspendLicense" => {
            (by_id(mutation), json!({ "id": licence(LicenseStatus::Active).await }))
        }
        "reactivateLicense" => (by_id(mutation), json!({ "id": licence(LicenseStatus::Inactive).await })),
        "unsuspendLicense" => (by_id(mutation), json!({ "id": licence(LicenseStatus::Suspended).await })),
        "revokeLicense" => (by_id(mutation), json!({ "id": licence(LicenseStatus::Assigned).await })),
        "renewLicense" => {
            let id = licence(LicenseStatus::Assigned).await;
            let at = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
            let set = "mutation($id: ID!, $at: DateTime!) { updateLicense(input: {id: $id, expiresAt: $at}) { license { id } } }";
            let body = app.graphql(Some(admin), set, json!({ "id": id, "at": at })).await;
            assert!(body.get("errors").is_none(), "{body:#}");
            (
                "mutation($id: ID!) { renewLicense(input: {licenseId: $id, period: {days: 30}}) { license { id } } }".into(),
                json!({ "id": id }),
            )
        }
        "deleteLicense" => (
            "mutation($id: ID!) { deleteLicense(input: {id: $id}) { keysChanged } }".into(),
            json!({ "id": licence(LicenseStatus::Available).await }),
        ),
        "createGenerator" => (
            "mutation($n: String!) { createGenerator(input: {name: $n}) { generator { id } } }".into(),
            json!({ "n": format!("g-{}", ulid::Ulid::generate()) }),
        ),
        "updateGenerator" => (
            "mutation($id: ID!) { updateGenerator(input: {id: $id, defaultActivationLimit: 5}) { generator { id } } }"
                .into(),
            json!({ "id": generator_id().await }),
        ),
        "deleteGenerator" => (
            "mutation($id: ID!) { deleteGenerator(input: {id: $id}) { deletedId } }".into(),
            json!({ "id": generator_id().await }),
        ),
        "createTag" => (
            "mutation($n: String!) { createTag(input: {name: $n}) { tag { id } } }".into(),
            json!({ "n": format!("t-{}", ulid::Ulid::generate().to_string().to_lowercase()) }),
        ),
        "renameTag" => (
            "mutation($id: ID!, $n: String!) { renameTag(input: {id: $id, name: $n}) { tag { id } } }".into(),
            json!({ "id": tag_id().await, "n": format!("r-{}", ulid::Ulid::generate().to_string().to_lowercase()) }),
        ),
        "deleteTag" => (
            "mutation($id: ID!) { deleteTag(input: {id: $id}) { keysChanged } }".into(),
            json!({ "id": tag_id().await }),
        ),
        "importLicenseKeys" => (
            "mutation($k: String!) { importLicenseKeys(input: {text: $k}) { imported } }".into(),
            json!({ "k": format!("K-{}", ulid::Ulid::generate()) }),
        ),
        "tagLicenseKeys" | "untagLicenseKeys" => {
            let tag = tag_id().await;
            let key = key_id(tag.clone()).await;
            (tag_mutation(mutation), json!({ "t": tag, "k": [key] }))
        }
        "moveLicenseKeys" => (
            "mutation($f: ID!, $t: ID!) { moveLicenseKeys(input: {fromTagId: $f, toTagId: $t}) { keysChanged } }"
                .into(),
            json!({ "f": tag_id().await, "t": tag_id().await }),
        ),
        "deleteLicenseKeys" => {
            let key = key_id(tag_id().await).await;
            (
                "mutation($k: [ID!]!) { deleteLicenseKeys(input: {keyIds: $k}) { keysChanged } }".into(),
                json!({ "k": [key] }),
            )
        }
        "cleanUpDuplicates" => (
            "mutation($t: ID!) { cleanUpDuplicates(input: {tagId: $t}) { keysChanged } }".into(),
            json!({ "t": tag_id().await }),
        ),
        "createProduct" => (
            "mutation($n: String!) { createProduct(input: {name: $n}) { product { id } } }".into(),
            json!({ "n": format!("p-{}", ulid::Ulid::generate()) }),
        ),
        "updateProduct" => (
            "mutation($id: ID!) { updateProduct(input: {id: $id, description: \"changed\"}) { product { id } } }"
                .into(),
            json!({ "id": product_id().await }),
        ),
        "archiveProduct" => (
            "mutation($id: ID!) { archiveProduct(input: {id: $id}) { product { id } } }".into(),
            json!({ "id": product_id().await }),
        ),
        "login" => (
            "mutation($e: String!, $p: String!) { login(input: {email: $e, password: $p}) { token } }".into(),
            json!({ "e": "nobody@example.com", "p": "wrong password here" }),
        ),
        "updateSettings" => (
            "mutation { updateSettings(input: {previewRequiresRecentSignIn: false}) { settings { previewRequiresRecentSignIn } } }"
                .into(),
            json!({}),
        ),
        "validateLicense" => (
            "mutation($k: String!) { validateLicense(input: {key: $k}) { code } }".into(),
            json!({ "k": format!("L-{}", ulid::Ulid::generate()) }),
        ),
        "activateLicense" => (
            "mutation($k: String!) { activateLicense(input: {key: $k, fingerprint: \"pc\"}) { code } }".into(),
            json!({ "k": format!("L-{}", ulid::Ulid::generate()) }),
        ),
        "deactivateLicense" => (
            "mutation($k: String!) { deactivateLicense(input: {key: $k, fingerprint: \"pc\"}) { code } }".into(),
            json!({ "k": format!("L-{}", ulid::Ulid::generate()) }),
        ),
        "deactivateActivation" => {
            let (_, _, key) = order().await;
            let key = key.as_str().expect("a key id").to_string();
            let activation = entity::activation::ActiveModel {
                id: sea_orm::Set(entity::new_id()),
                license_key_id: sea_orm::Set(key),
                fingerprint: sea_orm::Set("pc".into()),
                name: sea_orm::Set(None),
                platform: sea_orm::Set(None),
                client_address: sea_orm::Set(None),
                created_at: sea_orm::Set(entity::now()),
                last_seen_at: sea_orm::Set(entity::now()),
                deactivated_at: sea_orm::Set(None),
            };
            let id = sea_orm::ActiveModelTrait::insert(activation, app.db()).await.expect("an activation").id;
            (
                "mutation($id: ID!) { deactivateActivation(input: {id: $id}) { activation { id } } }".into(),
                json!({ "id": id }),
            )
        }
        "createWebhookEndpoint" => (
            "mutation { createWebhookEndpoint(input: {url: \"http://127.0.0.1:9/hook\", events: [\"order.created\"], \
             enabled: false}) { endpoint { id } secret } }"
                .into(),
            json!({}),
        ),
        "createIntegration" => (
            "mutation { createIntegration(input: {provider: STRIPE, name: \"Shop\", secret: \"whsec_roles_0123\"}) \
             { integration { id } } }"
                .into(),
            json!({}),
        ),
        "updateIntegration" | "deleteIntegration" | "replayIntegrationEvent" => {
            use crate::integrations::{SECRET, checkout, send, stripe_event};
            let id = crate::providers::connect(app, admin, "STRIPE", SECRET, json!([]), json!({})).await;
            match mutation {
                "updateIntegration" => (
                    "mutation($id: ID!) { updateIntegration(input: {id: $id, name: \"Renamed\"}) { integration { name } } }"
                        .into(),
                    json!({ "id": id }),
                ),
                "deleteIntegration" => (
                    "mutation($id: ID!) { deleteIntegration(input: {id: $id}) { deletedId } }".into(),
                    json!({ "id": id }),
                ),
                _ => {
                    // An item nobody mapped: the event waits for an admin.
                    let body = stripe_event(
                        &format!("evt_{}", entity::new_id()),
                        "checkout.session.completed",
                        checkout("cs_roles", "roles@example.com", "price_unmapped", "pi_roles"),
                    );
                    assert_eq!(send(app, &id, &body).await.1["outcome"], "NEEDS_ATTENTION");
                    let event = crate::providers::events(app, admin, &id).await[0]["id"].clone();
                    (
                        "mutation($id: ID!) { replayIntegrationEvent(input: {id: $id}) { event { outcome } } }".into(),
                        json!({ "id": event }),
                    )
                }
            }
        }
        "updateWebhookEndpoint" | "deleteWebhookEndpoint" | "redeliverWebhook" => {
            let body = app
                .graphql(
                    Some(admin),
                    "mutation { createWebhookEndpoint(input: {url: \"http://127.0.0.1:9/hook\", \
                     events: [\"order.created\"], enabled: false}) { endpoint { id } } }",
                    json!({}),
                )
                .await;
            let endpoint = data(&body)["createWebhookEndpoint"]["endpoint"]["id"].as_str().expect("id").to_string();
            match mutation {
                "updateWebhookEndpoint" => (
                    "mutation($id: ID!) { updateWebhookEndpoint(input: {id: $id, url: \"http://127.0.0.1:9/other\"}) \
                     { endpoint { url } } }"
                        .into(),
                    json!({ "id": endpoint }),
                ),
                "deleteWebhookEndpoint" => (
                    "mutation($id: ID!) { deleteWebhookEndpoint(input: {id: $id}) { deletedId } }".into(),
                    json!({ "id": endpoint }),
                ),
                _ => {
                    let delivery = entity::webhook_delivery::ActiveModel {
                        id: sea_orm::Set(entity::new_id()),
                        endpoint_id: sea_orm::Set(endpoint),
                        event_id: sea_orm::Set(entity::new_id()),
                        event_type: sea_orm::Set("order.created".into()),
                        payload: sea_orm::Set(json!({})),
                        status: sea_orm::Set("FAILED".into()),
                        attempts: sea_orm::Set(3),
                        next_attempt_at: sea_orm::Set(entity::now()),
                        locked_until: sea_orm::Set(None),
                        last_status_code: sea_orm::Set(Some(500)),
                        last_response: sea_orm::Set(None),
                        last_error: sea_orm::Set(None),
                        created_at: sea_orm::Set(entity::now()),
                        delivered_at: sea_orm::Set(None),
                    };
                    let id = sea_orm::ActiveModelTrait::insert(delivery, app.db()).await.expect("a delivery").id;
                    (
                        "mutation($id: ID!) { redeliverWebhook(input: {id: $id}) { delivery { status } } }".into(),
                        json!({ "id": id }),
                    )
                }
            }
        }
        "createUser" => (
            "mutation($e: String!, $p: String!) { createUser(input: {email: $e, password: $p, role: SUPPORT}) \
             { user { id } } }"
                .into(),
            json!({ "e": format!("u-{}@example.com", ulid::Ulid::generate().to_string().to_lowercase()), "p": TEST_PASSWORD }),
        ),
        "updateUser" => {
            let body = app
                .graphql(
                    Some(admin),
                    "mutation($e: String!, $p: String!) { createUser(input: {email: $e, password: $p, role: SUPPORT}) \
                     { user { id } } }",
                    json!({ "e": format!("u-{}@example.com", ulid::Ulid::generate().to_string().to_lowercase()), "p": TEST_PASSWORD }),
                )
                .await;
            (
                "mutation($id: ID!) { updateUser(input: {id: $id, role: MANAGER}) { user { role } } }".into(),
                json!({ "id": data(&body)["createUser"]["user"]["id"] }),
            )
        }
        "changePassword" => (
            "mutation($c: String!, $n: String!) { changePassword(input: {currentPassword: $c, newPassword: $n}) { token } }"
                .into(),
            json!({ "c": TEST_PASSWORD, "n": "a brand new passphrase 2026" }),
        ),
        "createOrder" => (
            "mutation($x: String!, $e: String!, $p: ID!) { createOrder(input: {externalId: $x, \
             customer: {email: $e}, lines: [{productId: $p, quantity: 1}]}) { order { id } } }"
                .into(),
            json!({
                "x": format!("x-{}", ulid::Ulid::generate()),
                "e": format!("o-{}@example.com", ulid::Ulid::generate().to_string().to_lowercase()),
                "p": product_id().await,
            }),
        ),
        "reassignOrderKey" => {
            let (_, line, key) = order().await;
            (
                "mutation($l: ID!, $k: ID!) { reassignOrderKey(input: {lineId: $l, licenseId: $k}) \
                 { license { id } } }"
                    .into(),
                json!({ "l": line, "k": key }),
            )
        }
        "unassignLicense" => {
            let (_, _, key) = order().await;
            (
                "mutation($id: ID!) { unassignLicense(input: {id: $id, to: USED}) { license { id } } }".into(),
                json!({ "id": key }),
            )
        }
        "refundOrder" => {
            let (id, _, _) = order().await;
            ("mutation($id: ID!) { refundOrder(input: {id: $id}) { order { id } } }".into(), json!({ "id": id }))
        }
        other => panic!("no request written for {other}"),
    }
}

on_both_databases!(each_role_gets_the_outcome_the_matrix_says);

async fn each_role_gets_the_outcome_the_matrix_says(app: TestApp) {
    let mut admin = app.staff_token(StaffRole::Admin).await;
    let mut tokens = [
        Some(admin.clone()),
        Some(app.staff_token(StaffRole::Manager).await),
        Some(app.staff_token(StaffRole::Support).await),
        Some(app.customer_token(&entity::new_id()).await),
        None,
    ];
    for (mutation, outcomes) in MATRIX {
        for (i, (role, expected)) in ROLES.iter().zip(outcomes).enumerate() {
            let (query, variables) = request_for(&app, &admin, mutation).await;
            let body = app.graphql(tokens[i].as_deref(), &query, variables).await;
            let code = error_code(&body);
            match expected {
                Forbidden => assert_eq!(code, Some("FORBIDDEN"), "{mutation} as {role}: {body:#}"),
                Unauthenticated => assert_eq!(code, Some("UNAUTHENTICATED"), "{mutation} as {role}: {body:#}"),
                OwnOnly => assert_eq!(code, Some("NOT_FOUND"), "{mutation} as {role} on another's: {body:#}"),
                // Past the guard: the mutation ran (login then judges the credentials).
                Allowed if *mutation == "login" => {
                    assert_eq!(body["errors"][0]["message"], "not authenticated: invalid email or password", "{role}")
                }
                Allowed => assert!(body.get("errors").is_none(), "{mutation} as {role}: {body:#}"),
            }
            // A password change ends the caller's tokens and hands a fresh one.
            if let Some(fresh) = body["data"]["changePassword"]["token"].as_str() {
                tokens[i] = Some(fresh.to_string());
                if i == 0 {
                    admin = fresh.to_string();
                }
            }
        }
    }
}

#[test]
fn every_mutation_has_a_row_in_the_role_matrix() {
    let sdl = keysmith::graphql::sdl();
    let block = sdl.split("type Mutation {").nth(1).and_then(|rest| rest.split("\n}").next()).expect("a Mutation type");
    let mut in_description = false;
    let mut in_schema = BTreeSet::new();
    for line in block.lines().map(str::trim) {
        if line.starts_with("\"\"\"") {
            let one_line = line.len() > 3 && line.ends_with("\"\"\"");
            if !one_line {
                in_description = !in_description;
            }
            continue;
        }
        if in_description || line.is_empty() || line.starts_with('"') {
            continue;
        }
        if let Some(name) = line.split(['(', ':']).next() {
            in_schema.insert(name);
        }
    }
    let in_matrix: BTreeSet<&str> = MATRIX.iter().map(|(m, _)| *m).collect();
    assert_eq!(in_schema, in_matrix, "every mutation needs a row in MATRIX");
}

/// One row of the README's role table: the role it builds on ("what a
/// manager may") and the mutations it names in backticks.
type TableRow<'a> = (Option<&'static str>, BTreeSet<&'a str>);

/// The mutations a row of the table grants, with those of the rows it builds on.
fn granted<'a>(rows: &BTreeMap<&'a str, TableRow<'a>>, role: &str, depth: usize) -> BTreeSet<&'a str> {
    assert!(depth < ROLES.len(), "the README's role table builds on itself in a circle");
    let (base, named) = rows.get(role).unwrap_or_else(|| panic!("the README's role table has no row for {role}"));
    let mut all = named.clone();
    if let Some(base) = base {
        all.extend(granted(rows, base, depth + 1));
    }
    all
}

/// The README's role table says exactly what [`MATRIX`] proves: every
/// mutation a role may run is named in its row or in a row it builds on, and
/// nothing else is (deletes included: a manager's as much as an admin's).
#[test]
fn the_readme_role_table_is_the_matrix() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).expect("README.md");
    let table = readme.split("| role | may |").nth(1).expect("the README's role table");
    let mut rows: BTreeMap<&str, TableRow<'_>> = BTreeMap::new();
    for line in table.lines().skip(1).take_while(|l| l.starts_with('|')).filter(|l| !l.starts_with("|---")) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let &[role, may] = cells.as_slice() else { panic!("a role row has two cells: {line}") };
        assert!(ROLES.contains(&role), "{role} is not a role");
        let bases: Vec<&'static str> = ROLES
            .into_iter()
            .filter(|r| *r != role)
            .filter(|r| may.contains(&format!("{r} may")) || may.contains(&format!("{r} callers may")))
            .collect();
        assert!(bases.len() <= 1, "{role} builds on one role at most: {bases:?}");
        let named: BTreeSet<&str> = may.split('`').skip(1).step_by(2).collect();
        assert!(rows.insert(role, (bases.first().copied(), named)).is_none(), "two rows for {role}");
    }
    for (i, role) in ROLES.iter().enumerate() {
        let proven: BTreeSet<&str> =
            MATRIX.iter().filter(|(_, outcomes)| matches!(outcomes[i], Allowed | OwnOnly)).map(|(m, _)| *m).collect();
        let said = granted(&rows, role, 0);
        let unsaid: Vec<&&str> = proven.difference(&said).collect();
        let wrong: Vec<&&str> = said.difference(&proven).collect();
        assert!(
            unsaid.is_empty() && wrong.is_empty(),
            "the README's row for {role}: the matrix lets it run {unsaid:?}, which the table does not say; \
             the table says it may run {wrong:?}, which the matrix refuses or does not know"
        );
    }
}

on_both_databases!(staff_read_and_others_do_not);

async fn staff_read_and_others_do_not(app: TestApp) {
    let query = "{ products { totalCount } tags { totalCount } licenseKeys { totalCount } }";
    for role in [StaffRole::Admin, StaffRole::Manager, StaffRole::Support] {
        let token = app.staff_token(role).await;
        let body = app.graphql(Some(&token), query, json!({})).await;
        assert_eq!(
            data(&body),
            &json!({ "products": { "totalCount": 0 }, "tags": { "totalCount": 2 }, "licenseKeys": { "totalCount": 0 } }),
            "{role:?}"
        );
    }
    let customer = app.customer_token(&entity::new_id()).await;
    assert_eq!(error_code(&app.graphql(Some(&customer), query, json!({})).await), Some("FORBIDDEN"));
    assert_eq!(error_code(&app.graphql(None, query, json!({})).await), Some("UNAUTHENTICATED"));
}
