//! Ready-to-run validation requests for one licence, as the preview shows
//! them: cURL, PHP, JavaScript and Python, filled in with the server's
//! address, the environment and the key. Every value is written as a literal
//! of the sample's language (JSON-escaped, and shell-quoted for cURL), so
//! any key is safe to paste.

use entity::Environment;

/// The request every sample sends.
pub const VALIDATE: &str = "mutation($input: ValidateLicenseInput!) { validateLicense(input: $input) \
                            { valid code detail license { status expiresAt featureFlags activationsUsed activationLimit } } }";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Curl,
    Php,
    JavaScript,
    Python,
}

#[derive(Debug, Clone)]
pub struct Sample {
    pub language: Language,
    pub code: String,
}

/// What a sample is filled in with.
#[derive(Debug, Clone)]
pub struct Target<'a> {
    /// The server's address, without a trailing slash.
    pub base_url: &'a str,
    pub environment: Environment,
    pub key: &'a str,
    /// A device the licence is activated on, or a placeholder to replace.
    pub fingerprint: &'a str,
}

fn json(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `s` as one POSIX shell word.
fn shell(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` as a PHP single-quoted string.
fn php(s: &str) -> String {
    format!("'{}'", s.replace('\\', r"\\").replace('\'', r"\'"))
}

pub fn all(t: &Target<'_>) -> Vec<Sample> {
    [Language::Curl, Language::Php, Language::JavaScript, Language::Python]
        .into_iter()
        .map(|language| Sample { language, code: sample(language, t) })
        .collect()
}

fn sample(language: Language, t: &Target<'_>) -> String {
    let url = format!("{}/graphql", t.base_url);
    let staging = t.environment != Environment::Production;
    let env = t.environment.as_str();
    match language {
        Language::Curl => {
            let body = serde_json::json!({
                "query": VALIDATE,
                "variables": { "input": { "key": t.key, "fingerprint": t.fingerprint } }
            });
            let env_header = if staging {
                format!("  -H {} \\\n", shell(&format!("X-Keysmith-Environment: {env}")))
            } else {
                String::new()
            };
            format!(
                "curl -sS -X POST {} \\\n  -H 'Content-Type: application/json' \\\n{env_header}  --data {}\n",
                shell(&url),
                shell(&body.to_string())
            )
        }
        Language::Php => {
            let env_header = if staging { format!(", 'X-Keysmith-Environment: {env}'") } else { String::new() };
            format!(
                "<?php\n\
                 $payload = json_encode([\n    'query' => {query},\n    'variables' => ['input' => [\n        \
                 'key' => {key},\n        'fingerprint' => {fingerprint}, // a stable id of this device\n    ]],\n]);\n\
                 $ch = curl_init({url});\n\
                 curl_setopt_array($ch, [\n    CURLOPT_POST => true,\n    CURLOPT_POSTFIELDS => $payload,\n    \
                 CURLOPT_HTTPHEADER => ['Content-Type: application/json'{env_header}],\n    \
                 CURLOPT_RETURNTRANSFER => true,\n    CURLOPT_TIMEOUT => 10,\n]);\n\
                 $result = json_decode(curl_exec($ch), true)['data']['validateLicense'];\n\
                 echo $result['code'], PHP_EOL;\n",
                query = php(VALIDATE),
                key = php(t.key),
                fingerprint = php(t.fingerprint),
                url = php(&url),
            )
        }
        Language::JavaScript => {
            let env_header =
                if staging { format!(", \"X-Keysmith-Environment\": {}", json(env)) } else { String::new() };
            format!(
                "const response = await fetch({url}, {{\n  method: \"POST\",\n  \
                 headers: {{ \"Content-Type\": \"application/json\"{env_header} }},\n  body: JSON.stringify({{\n    \
                 query: {query},\n    variables: {{ input: {{ key: {key}, fingerprint: {fingerprint} }} }}, \
                 // fingerprint: a stable id of this device\n  }}),\n}});\n\
                 const result = (await response.json()).data.validateLicense;\n\
                 console.log(result.code, result.valid);\n",
                url = json(&url),
                query = json(VALIDATE),
                key = json(t.key),
                fingerprint = json(t.fingerprint),
            )
        }
        Language::Python => {
            let env_header =
                if staging { format!(", \"X-Keysmith-Environment\": {}", json(env)) } else { String::new() };
            format!(
                "import json\nimport urllib.request\n\n\
                 payload = {{\n    \"query\": {query},\n    \"variables\": {{\"input\": {{\n        \
                 \"key\": {key},\n        \"fingerprint\": {fingerprint},  # a stable id of this device\n    }}}},\n}}\n\
                 request = urllib.request.Request(\n    {url},\n    data=json.dumps(payload).encode(),\n    \
                 headers={{\"Content-Type\": \"application/json\"{env_header}}},\n)\n\
                 with urllib.request.urlopen(request, timeout=10) as response:\n    \
                 result = json.load(response)[\"data\"][\"validateLicense\"]\n\
                 print(result[\"code\"], result[\"valid\"])\n",
                query = json(VALIDATE),
                key = json(t.key),
                fingerprint = json(t.fingerprint),
                url = json(&url),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_keys_stay_literal_in_every_language() {
        let key = r#"it's "odd" \ key $HOME `x`"#;
        let t = Target { base_url: "http://h", environment: Environment::Staging, key, fingerprint: "d" };
        let samples = all(&t);
        let curl = &samples[0].code;
        assert!(curl.contains(r#"it'\''s \"odd\" \\ key $HOME `x`"#), "{curl}");
        assert!(curl.contains("X-Keysmith-Environment: staging"));
        assert!(samples[1].code.contains(r#"'it\'s "odd" \\ key $HOME `x`'"#), "{}", samples[1].code);
        assert!(samples[3].code.contains(r#""it's \"odd\" \\ key $HOME `x`""#));
    }
}
