package config_test

import (
	"testing"

	"github.com/wahook/wahook/shared/deployenv"
	"github.com/wahook/wahook/worker/internal/config"

	shared "github.com/wahook/wahook/shared/config"
)

// The deployment files set only variables the worker reads (or its SDKs do):
// a misspelt or retired name would otherwise be ignored without a word.
func TestDeploymentFilesSetOnlyWhatWorkerReads(t *testing.T) {
	t.Parallel()
	read := shared.Variables[config.Config]()
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
		env, ok := services["worker"]
		if !ok {
			t.Errorf("%s: no worker service", file)
			continue
		}
		if unread := deployenv.Unread(env, read); len(unread) > 0 {
			t.Error(deployenv.Describe(file, "worker", unread))
		}
	}
}
