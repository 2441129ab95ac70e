// Package webhooktest holds webhook bodies that tests across modules share.
package webhooktest

// SeedScenario1 is the seed testing guide's Scenario 1 body, as its curl sends
// it (blank after "page_id" included): one text message, and no object, field
// or metadata — the shape every service must accept.
const SeedScenario1 = `{
    "entry": [{
      "id": "page_id", 
      "changes": [{
        "value": {
          "messages": [{
            "id": "test_msg_001",
            "from": "1234567890",
            "text": {"body": "Test message"},
            "timestamp": "1642248600"
          }]
        }
      }]
    }]
  }`

// SeedScenario1Key is the ledger key of SeedScenario1's message.
const SeedScenario1Key = "msg#test_msg_001"
