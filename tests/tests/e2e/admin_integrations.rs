//! The admin's Integrations pages over HTTP: connecting a shop (the secret
//! never echoed), its inbound address, mappings, policies, an event that
//! needs attention replayed after mapping; CSRF on every action; admins only.

use crate::admin_keys::signed_in;
use crate::integrations::{SECRET, Store, checkout, send, stripe_event};
use entity::user::StaffRole;
use keysmith_tests::{TestApp, data, on_both_databases};
use serde_json::json;

on_both_databases!(an_admin_connects_a_shop_in_the_portal);

async fn an_admin_connects_a_shop_in_the_portal(app: TestApp) {
    let (store, product, _) = Store::new(&app).await;
    let mut boss = signed_in(&app, StaffRole::Admin).await;

    let list = boss.get("/admin/integrations").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(list.body.contains("No integrations yet."), "{}", list.body);
    // A refusal is said on the form; the typed secret is not sent back.
    let refused = boss
        .post(
            "/admin/integrations",
            &[
                ("csrf", &list.csrf()),
                ("provider", "STRIPE"),
                ("name", "Web shop"),
                ("secret", "tiny"),
                ("on_refund", "KEEP"),
                ("on_cancel", "SUSPEND"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.body.contains("secret: must be 6 to 500 characters") && !refused.body.contains("value=\"tiny\""),
        "{}",
        refused.body
    );
    let created = boss
        .post(
            "/admin/integrations",
            &[
                ("csrf", &list.csrf()),
                ("provider", "STRIPE"),
                ("name", "Web shop"),
                ("secret", SECRET),
                ("on_refund", "REVOKE"),
                ("on_cancel", "SUSPEND"),
            ],
        )
        .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let here = created.location().to_string();
    let id = here.rsplit('/').next().expect("an id").to_string();
    let detail = boss.get(&here).await;
    assert!(
        detail.body.contains("Integration created") && detail.body.contains(&format!("/integrations/{id}/webhook")),
        "{}",
        detail.body
    );
    assert!(!detail.body.contains(SECRET), "the secret is never shown");
    assert!(detail.body.contains("checkout.session.completed"), "the setup steps: {}", detail.body);

    // A mapping added; an unmapped item waits, is listed, and is replayed once mapped.
    let mapped = boss
        .post(
            &here,
            &[
                ("csrf", &detail.csrf()),
                ("change", "add-mapping"),
                ("provider_ref", "price_app"),
                ("product", &product),
            ],
        )
        .await;
    assert_eq!(mapped.status, 303);
    let body = stripe_event(
        "evt_portal",
        "checkout.session.completed",
        checkout("cs_portal", "ada@example.com", "price_new", "pi_portal"),
    );
    assert_eq!(send(&app, &id, &body).await.1["outcome"], "NEEDS_ATTENTION");
    let list = boss.get("/admin/integrations").await;
    assert!(list.body.contains("Web shop") && list.body.contains("<td class=\"num\">1</td>"), "{}", list.body);
    let home = boss.get("/admin/").await;
    assert!(
        home.body.contains("Shop events needing attention <span class=\"tally\">1</span>")
            && home.body.contains(&format!("{here}?outcome=NEEDS_ATTENTION")),
        "{}",
        home.body
    );
    let detail = boss.get(&format!("{here}?outcome=NEEDS_ATTENTION")).await;
    assert!(detail.body.contains("Desktop App") && detail.body.contains("UNMAPPED_ITEM"), "{}", detail.body);
    let event = detail
        .body
        .split("name=\"event\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .expect("a Replay button")
        .to_string();
    boss.post(
        &here,
        &[("csrf", &detail.csrf()), ("change", "add-mapping"), ("provider_ref", "price_new"), ("product", &product)],
    )
    .await;
    let replayed = boss.post(&here, &[("csrf", &detail.csrf()), ("change", "replay"), ("event", &event)]).await;
    assert_eq!(replayed.status, 303);
    let after = boss.get(&here).await;
    assert!(after.body.contains("Event replayed") && after.body.contains(">cs_portal</a>"), "{}", after.body);

    // Policies and the secret change through their forms; without the form's token nothing changes.
    let forged = boss.post(&here, &[("change", "policies"), ("on_refund", "KEEP"), ("on_cancel", "REVOKE")]).await;
    assert_eq!(forged.status, 403);
    boss.post(
        &here,
        &[("csrf", &after.csrf()), ("change", "policies"), ("on_refund", "RETURN_UNREVEALED"), ("on_cancel", "REVOKE")],
    )
    .await;
    boss.post(
        &here,
        &[("csrf", &after.csrf()), ("change", "secret"), ("secret", "whsec_replaced_in_portal"), ("keep_hours", "2")],
    )
    .await;
    // Settings: a bad number is refused at its field; good ones are saved.
    let settings = |tolerance: &'static str| {
        vec![
            ("csrf", after.csrf()),
            ("change", "settings".into()),
            ("name", "Main shop".into()),
            ("tolerance", tolerance.into()),
            ("rate", "1200".into()),
        ]
    };
    let bad = settings("0");
    let bad: Vec<(&str, &str)> = bad.iter().map(|(k, v)| (*k, v.as_str())).collect();
    boss.post(&here, &bad).await;
    assert!(boss.get(&here).await.body.contains("toleranceSeconds: must be from 1 to 3600"));
    let good = settings("600");
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    boss.post(&here, &good).await;
    let saved = boss.get(&here).await;
    assert!(saved.body.contains("Settings saved") && saved.body.contains("<h1>Main shop"), "{}", saved.body);
    let read = app
        .graphql(Some(&store.admin), "query($id: ID!) { integration(id: $id) { onRefund onCancel previousSecretValidUntil toleranceSeconds rateLimitPerMinute emailCustomer productMappings { providerRef } } }", json!({ "id": id }))
        .await;
    let shown = &data(&read)["integration"];
    assert_eq!((&shown["onRefund"], &shown["onCancel"]), (&json!("RETURN_UNREVEALED"), &json!("REVOKE")));
    assert!(shown["previousSecretValidUntil"].is_string(), "{shown}");
    assert_eq!(
        (&shown["toleranceSeconds"], &shown["rateLimitPerMinute"], &shown["emailCustomer"]),
        (&json!(600), &json!(1200), &json!(false))
    );
    assert_eq!(shown["productMappings"].as_array().map(Vec::len), Some(2));

    // Managers see no Integrations.
    let mut manager = signed_in(&app, StaffRole::Manager).await;
    assert!(!manager.get("/admin/").await.body.contains("/admin/integrations"));
    assert_eq!(manager.get("/admin/integrations").await.status, 403);
    assert_eq!(manager.get(&here).await.status, 403);

    let deleted = boss.post(&here, &[("csrf", &after.csrf()), ("change", "delete")]).await;
    assert_eq!((deleted.status, deleted.location()), (303, "/admin/integrations"));
    assert!(boss.get("/admin/integrations").await.body.contains("No integrations yet."));
}
