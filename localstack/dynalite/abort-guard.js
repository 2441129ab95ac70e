// Preloaded into dynalite (node -r): dynalite 4.0.0 rethrows a request's
// 'error' event (index.js: req.on('error', err => { throw err })), so one
// client that disconnects mid-request - a process killed with kill -9 in the
// race suite - takes the whole emulator down. An aborted request has not been
// processed yet, so it is dropped and logged; every other uncaught error still
// ends the process as it would without this file.
'use strict'

process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.code === 'ECONNABORTED') && err.message === 'aborted') {
    console.error(`dynalite: a client aborted a request (${err.code}); dropped`)
    return
  }
  console.error(err)
  process.exit(1)
})
