package deployenv_test

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wahook/wahook/shared/deployenv"
)

func write(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Anchors and merges are resolved, services behind a profile are included,
// interpolation takes defaults.
func TestCompose(t *testing.T) {
	t.Parallel()
	path := write(t, "docker-compose.yml", `
x-common: &common
  AWS_REGION: us-east-1
  WAHOOK_LOG_LEVEL: ${WAHOOK_LOG_LEVEL:-info}
services:
  api:
    image: example/api
    environment:
      <<: *common
      WAHOOK_HTTP_ADDR: ":8080"
  extra:
    image: example/extra
    profiles: [observability]
    environment:
      - OTEL_SERVICE_NAME=extra
      - EXTRA_SETTING
`)
	got, err := deployenv.Compose(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"api":   {"AWS_REGION", "WAHOOK_HTTP_ADDR", "WAHOOK_LOG_LEVEL"},
		"extra": {"EXTRA_SETTING", "OTEL_SERVICE_NAME"},
	}
	for svc, names := range want {
		if !slices.Equal(got[svc], names) {
			t.Errorf("service %s: %v, want %v", svc, got[svc], names)
		}
	}
	if len(got) != len(want) {
		t.Errorf("services %v, want %v", got, want)
	}
}

func TestComposeRefusesInvalidFile(t *testing.T) {
	t.Parallel()
	path := write(t, "docker-compose.yml", "services:\n  api:\n    image: x\n    environment: 42\n")
	if _, err := deployenv.Compose(t.Context(), path); err == nil {
		t.Fatal("no error for an environment that is neither a map nor a list")
	}
}

func TestECS(t *testing.T) {
	t.Parallel()
	path := write(t, "stack.json", `{"Resources": {
  "Queue": {"Type": "AWS::SQS::Queue", "Properties": {}},
  "Task": {"Type": "AWS::ECS::TaskDefinition", "Properties": {"ContainerDefinitions": [
    {"Name": "api", "Environment": [{"Name": "WAHOOK_B", "Value": "1"}, {"Name": "AWS_REGION", "Value": {"Ref": "AWS::Region"}}],
     "Secrets": [{"Name": "WAHOOK_A", "ValueFrom": "arn:x"}]}]}}}}`)
	got, err := deployenv.ECS(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"AWS_REGION", "WAHOOK_A", "WAHOOK_B"}; !slices.Equal(got["api"], want) || len(got) != 1 {
		t.Errorf("ECS = %v, want api: %v", got, want)
	}
}

func TestUnread(t *testing.T) {
	t.Parallel()
	given := []string{"AWS_REGION", "AWS_REGOIN", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTR_OTLP_ENDPOINT",
		"WAHOOK_HTTP_ADDR", "WAHOOK_HTTP_ADRESS"}
	got := deployenv.Unread(given, []string{"WAHOOK_HTTP_ADDR"})
	if want := []string{"AWS_REGOIN", "OTEL_EXPORTR_OTLP_ENDPOINT", "WAHOOK_HTTP_ADRESS"}; !slices.Equal(got, want) {
		t.Errorf("Unread = %v, want %v", got, want)
	}
}
