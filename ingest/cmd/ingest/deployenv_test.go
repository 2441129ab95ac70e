package main

import (
	"testing"

	"github.com/wahook/wahook/shared/config"
	"github.com/wahook/wahook/shared/deployenv"
)

// The deployment files set only variables ingest reads (or its SDKs do): a
// misspelt or retired name would otherwise be ignored without a word.
func TestDeploymentFilesSetOnlyWhatIngestReads(t *testing.T) {
	t.Parallel()
	read := config.Variables[Config]()
	const composeFile, ecsFile = "../../../docker-compose.yml", "../../../deploy/ecs/wahook.json"
	compose, err := deployenv.Compose(t.Context(), composeFile)
	if err != nil {
		t.Fatal(err)
	}
	ecs, err := deployenv.ECS(ecsFile)
	if err != nil {
		t.Fatal(err)
	}
	for file, services := range map[string]map[string][]string{composeFile: compose, ecsFile: ecs} {
		env, ok := services["ingest"]
		if !ok {
			t.Errorf("%s: no ingest service", file)
			continue
		}
		if unread := deployenv.Unread(env, read); len(unread) > 0 {
			t.Error(deployenv.Describe(file, "ingest", unread))
		}
	}
}
