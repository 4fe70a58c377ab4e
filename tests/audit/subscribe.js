// Subscribes to Keysmith over WebSocket with the npm graphql-ws client (the
// graphql-transport-ws protocol) and prints what happens as JSON lines:
//   {"connected": true}
//   {"id": 0, "next": {...}}      a result of subscription 0
//   {"id": 0, "error": [...]}     it failed
//   {"id": 0, "complete": true}   it ended
//   {"ping": true}                the server pinged
//   {"closed": 4403, "reason": "..."}   the socket closed (the script exits)
// Usage: node subscribe.js <ws-url> <token or -> <count> <query> [variables JSON]
// runs <count> subscriptions of the same operation on one connection.
// A line "stop N" on standard input completes subscription N; "exit" closes.
'use strict';
const { createClient } = require('graphql-ws');
const WebSocket = require('ws');
const readline = require('readline');

const [url, token, count, query, variables] = process.argv.slice(2);
// Each line carries `at`: when it arrived, in milliseconds since the epoch.
const print = (line) =>
  process.stdout.write(JSON.stringify({ ...line, at: performance.timeOrigin + performance.now() }) + '\n');

const client = createClient({
  url,
  webSocketImpl: WebSocket,
  lazy: false,
  retryAttempts: 0,
  connectionParams: token === '-' ? {} : { Authorization: `Bearer ${token}` },
  on: {
    connected: () => print({ connected: true }),
    // A ping from the server (answered with a pong by the client).
    ping: (received) => received && print({ ping: true }),
    closed: (event) => {
      print({ closed: event.code, reason: event.reason });
      process.exit(0);
    },
  },
});

const stops = [];
for (let id = 0; id < Number(count); id++) {
  stops.push(
    client.subscribe(
      { query, variables: variables ? JSON.parse(variables) : undefined },
      {
        next: (value) => print({ id, next: value }),
        error: (error) => print({ id, error: Array.isArray(error) ? error : String(error && (error.reason || error.message || error)) }),
        complete: () => print({ id, complete: true }),
      },
    ),
  );
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, n] = line.trim().split(' ');
  if (command === 'stop' && stops[Number(n)]) stops[Number(n)]();
  if (command === 'exit') client.dispose();
});
