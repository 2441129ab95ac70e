// Package deployenv reads the environment variables the deployment files give
// each service (docker-compose.yml through the compose-spec loader, the ECS
// CloudFormation stack's container definitions) and checks them against what
// the service's code reads, so that a misspelt or retired variable in a
// deployment file fails a test instead of being silently ignored at run time.
//
// It holds no service-specific knowledge: each service's tests pass its own
// config type's variables (config.Variables) and the service name.
package deployenv

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/compose-spec/compose-go/v2/cli"
)

// Compose returns, per service of the compose file at path (every profile
// included), the names of its environment variables, sorted. Interpolation
// uses an empty environment, so `${X:-default}` takes its default.
func Compose(ctx context.Context, path string) (map[string][]string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	opts, err := cli.NewProjectOptions([]string{abs},
		cli.WithName("wahook"),
		cli.WithWorkingDirectory(filepath.Dir(abs)),
		cli.WithEnv(nil),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", path, err)
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fmt.Errorf("compose %s: %w", path, err)
	}
	out := map[string][]string{}
	for name, svc := range project.Services {
		names := make([]string, 0, len(svc.Environment))
		for k := range svc.Environment {
			names = append(names, k)
		}
		slices.Sort(names)
		out[name] = names
	}
	return out, nil
}

// ECS returns, per container of every AWS::ECS::TaskDefinition in the
// CloudFormation template (JSON) at path, the names of its Environment and
// Secrets entries, sorted.
func ECS(path string) (map[string][]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties struct {
				ContainerDefinitions []struct {
					Name        string
					Environment []struct{ Name string }
					Secrets     []struct{ Name string }
				}
			}
		}
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		return nil, fmt.Errorf("template %s: %w", path, err)
	}
	out := map[string][]string{}
	for _, r := range tmpl.Resources {
		if r.Type != "AWS::ECS::TaskDefinition" {
			continue
		}
		for _, c := range r.Properties.ContainerDefinitions {
			var names []string
			for _, e := range c.Environment {
				names = append(names, e.Name)
			}
			for _, s := range c.Secrets {
				names = append(names, s.Name)
			}
			slices.Sort(names)
			out[c.Name] = append(out[c.Name], names...)
		}
	}
	return out, nil
}

// Unread returns the names in given that the code does not read: neither in
// read (the service's config variables) nor one of the SDK variables the
// services' libraries read themselves (IsSDKVariable).
func Unread(given, read []string) []string {
	var out []string
	for _, n := range given {
		if !slices.Contains(read, n) && !IsSDKVariable(n) {
			out = append(out, n)
		}
	}
	return out
}

// IsSDKVariable reports whether name is read by the AWS SDK for Go v2 or the
// OpenTelemetry SDK rather than by a config struct. The list is explicit, so
// that a misspelt SDK variable is still caught.
func IsSDKVariable(name string) bool { return sdkVariables[name] }

var sdkVariables = func() map[string]bool {
	m := map[string]bool{}
	for _, n := range []string{
		// AWS SDK for Go v2: region, endpoints, credential chain, IMDS.
		"AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_SQS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
		"AWS_EC2_METADATA_DISABLED", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS",
		"AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
		"AWS_CA_BUNDLE", "AWS_USE_FIPS_ENDPOINT", "AWS_USE_DUALSTACK_ENDPOINT",
		// OpenTelemetry SDK (general SDK configuration).
		"OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_LOG_LEVEL", "OTEL_PROPAGATORS",
		"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER",
		"OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_EXPORT_TIMEOUT", "OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
		"OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT",
		"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_SPAN_EVENT_COUNT_LIMIT", "OTEL_SPAN_LINK_COUNT_LIMIT",
		"OTEL_METRIC_EXPORT_INTERVAL", "OTEL_METRIC_EXPORT_TIMEOUT",
	} {
		m[n] = true
	}
	// OpenTelemetry's OTLP exporter: every setting, for all signals or one.
	for _, signal := range []string{"", "TRACES_", "METRICS_", "LOGS_"} {
		for _, s := range []string{"ENDPOINT", "PROTOCOL", "HEADERS", "TIMEOUT", "COMPRESSION", "INSECURE",
			"CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"} {
			m["OTEL_EXPORTER_OTLP_"+signal+s] = true
		}
	}
	return m
}()

// Describe formats unread names for a test failure.
func Describe(file, service string, unread []string) string {
	return fmt.Sprintf("%s: service %s sets %s, which the service does not read (misspelt or retired? "+
		"SDK variables are listed in shared/deployenv)", file, service, strings.Join(unread, ", "))
}
