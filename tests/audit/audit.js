// Audits a GraphQL endpoint with graphql-http's suite and prints one JSON
// object: per level (MUST, SHOULD, MAY) how many audits passed, and the
// names and reasons of those that did not. Usage: node audit.js <url>
"use strict";
const { auditServer } = require("graphql-http");

(async () => {
  const results = await auditServer({ url: process.argv[2] });
  const levels = {};
  for (const result of results) {
    const level = result.name.split(" ")[0];
    const tally = (levels[level] ??= { passed: 0, total: 0, failed: [] });
    tally.total += 1;
    if (result.status === "ok") tally.passed += 1;
    else tally.failed.push(`${result.name}: ${result.reason ?? result.status}`);
  }
  process.stdout.write(JSON.stringify(levels));
})().catch((error) => {
  process.stderr.write(String(error && error.stack ? error.stack : error));
  process.exit(1);
});
