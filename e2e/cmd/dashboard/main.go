// Command dashboard produces the data behind the README's dashboard picture:
// it runs a scripted load against real ingest and worker processes (steady
// webhooks with duplicates, workers stopped and restarted, a poison message,
// a worker's DynamoDB link cut), scrapes every process's /metrics into an
// in-memory Prometheus TSDB, then evaluates each panel query of the Grafana
// dashboard with Prometheus's own PromQL engine, as Grafana would ask
// Prometheus, and writes the resulting series as JSON for
// deploy/observability/render.py to draw.
//
//	go run ./cmd/dashboard -out /tmp/dashboard.json
//
// Grafana itself is not run: this is the same queries over the same kind of
// scrape, drawn with matplotlib in the dashboard's layout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/wahook/wahook/e2e/harness"
)

// Grafana's interval variables for this run: a 5 s step over a 2 s scrape
// gives $__rate_interval = max(5s + 2s, 4 × 2s) = 8s.
const (
	scrapeEvery  = 2 * time.Second
	step         = 5 * time.Second
	rateInterval = "8s"
)

func main() {
	dashPath := flag.String("dashboard", "../deploy/observability/grafana/dashboards/wahook.json", "the Grafana dashboard")
	out := flag.String("out", "dashboard-run.json", "where the evaluated series go")
	flag.Parse()
	log.SetFlags(log.Ltime)
	log.SetPrefix("dashboard: ")

	r := newRunner(15 * time.Minute)
	defer r.Finish()
	if err := run(r, *dashPath, *out); err != nil {
		r.Fatalf("%v", err)
	}
}

// panel is the part of a Grafana panel drawn.
type panel struct {
	Title   string `json:"title"`
	Type    string `json:"type"`
	GridPos struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	FieldConfig struct {
		Defaults struct {
			Unit string `json:"unit"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
	Targets []struct {
		Expr         string `json:"expr"`
		LegendFormat string `json:"legendFormat"`
	} `json:"targets"`
}

// Output is what render.py reads.
type Output struct {
	Title  string        `json:"title"`
	Start  int64         `json:"start"` // Unix seconds
	End    int64         `json:"end"`
	Step   float64       `json:"step"` // seconds between points
	Marks  []mark        `json:"marks"`
	Panels []outputPanel `json:"panels"`
}

type mark struct {
	T    int64  `json:"t"`
	Text string `json:"text"`
}

type outputPanel struct {
	Title   string   `json:"title"`
	Type    string   `json:"type"`
	GridPos [4]int   `json:"grid"` // x, y, w, h
	Unit    string   `json:"unit"`
	Series  []series `json:"series"`
}

type series struct {
	Legend string       `json:"legend"`
	Points [][2]float64 `json:"points"` // Unix seconds, value (NaN dropped)
}

func run(r *runner, dashPath, outPath string) error {
	raw, err := os.ReadFile(dashPath)
	if err != nil {
		return err
	}
	var dash struct {
		Title  string  `json:"title"`
		Panels []panel `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		return fmt.Errorf("%s: %w", dashPath, err)
	}

	dir, err := os.MkdirTemp("", "wahook-dashboard-tsdb-")
	if err != nil {
		return err
	}
	r.Cleanup(func() { _ = os.RemoveAll(dir) })
	db, err := tsdb.Open(dir, nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		return fmt.Errorf("tsdb: %w", err)
	}
	r.Cleanup(func() { _ = db.Close() })

	s := harness.NewStack(r, harness.StackOptions{})
	ingest := s.StartIngest(nil)
	scr := &scraper{db: db}
	scr.add(ingest, "wahook-ingest")
	startWorkers := func() {
		scr.add(s.StartWorker(harness.WorkerOptions{Processors: 4}), "wahook-worker")
		// A slow one: its handlers outlive a third of the visibility timeout,
		// so it heartbeats.
		scr.add(s.StartWorker(harness.WorkerOptions{Processors: 1, AuditDelay: 4 * time.Second}), "wahook-worker")
	}
	startWorkers()

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Go(func() { scr.run(ctx) })

	began := time.Now()
	var marks []mark
	note := func(text string) {
		log.Print(text)
		marks = append(marks, mark{T: time.Now().Unix(), Text: text})
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	bg.Go(func() { load(loadCtx, s) })
	at := func(d time.Duration) {
		select {
		case <-time.After(time.Until(began.Add(d))):
		case <-ctx.Done():
		}
	}

	at(35 * time.Second)
	note("workers stopped")
	for _, p := range s.Processes(harness.RoleWorker) {
		if _, err := p.Terminate(40 * time.Second); err != nil {
			log.Printf("stop %s: %v", p.Name, err)
		}
	}
	poison := "not an envelope"
	if _, err := s.Suite.Clients.SQS.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: &s.QueueURL, MessageBody: aws.String(poison)}); err != nil {
		return fmt.Errorf("poison message: %w", err)
	}
	at(60 * time.Second)
	note("workers started")
	startWorkers()
	at(95 * time.Second)
	note("DynamoDB cut (one worker)")
	fast := s.Processes(harness.RoleWorker)[0]
	if err := fast.DynamoDB.Cut(); err != nil {
		return err
	}
	at(115 * time.Second)
	note("DynamoDB back")
	if err := fast.DynamoDB.Restore(); err != nil {
		return err
	}
	at(150 * time.Second)
	stopLoad()
	at(160 * time.Second)
	end := time.Now()
	cancel()
	bg.Wait()

	out := Output{Title: dash.Title, Start: began.Unix(), End: end.Unix(), Step: step.Seconds(), Marks: marks}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	vars := strings.NewReplacer("$__rate_interval", rateInterval, "$__interval", step.String())
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		op := outputPanel{Title: p.Title, Type: p.Type, Unit: p.FieldConfig.Defaults.Unit,
			GridPos: [4]int{p.GridPos.X, p.GridPos.Y, p.GridPos.W, p.GridPos.H}}
		for _, tg := range p.Targets {
			q, err := engine.NewRangeQuery(context.Background(), db, nil, vars.Replace(tg.Expr), began, end, step)
			if err != nil {
				return fmt.Errorf("panel %q: %w", p.Title, err)
			}
			res := q.Exec(context.Background())
			if res.Err != nil {
				return fmt.Errorf("panel %q: %w", p.Title, res.Err)
			}
			m, err := res.Matrix()
			if err != nil {
				return fmt.Errorf("panel %q: %w", p.Title, err)
			}
			for _, sr := range m {
				ser := series{Legend: legend(tg.LegendFormat, sr.Metric)}
				for _, f := range sr.Floats {
					if !math.IsNaN(f.F) && !math.IsInf(f.F, 0) {
						ser.Points = append(ser.Points, [2]float64{float64(f.T) / 1000, f.F})
					}
				}
				op.Series = append(op.Series, ser)
			}
			q.Close()
		}
		out.Panels = append(out.Panels, op)
	}
	b, err := json.MarshalIndent(out, "", " ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(outPath, b, 0o644); err != nil {
		return err
	}
	log.Printf("%d panels, %d scrapes, written to %s", len(out.Panels), scr.count(), outPath)
	return nil
}

// load posts a webhook of 3 messages every 100 ms; every fifth is posted
// again (a duplicate delivery, as Meta sends them).
func load(ctx context.Context, s *harness.Stack) {
	c := s.Client()
	g := harness.NewGen(uint64(time.Now().UnixNano()))
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		body := g.Payload(g.Messages(3), nil).JSON()
		c.Post(ctx, body)
		if i%5 == 0 {
			c.Post(ctx, body)
		}
	}
}

var legendVar = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)

// legend fills a Grafana legend format with the series' labels.
func legend(format string, ls labels.Labels) string {
	if format == "" {
		return ls.String()
	}
	return legendVar.ReplaceAllStringFunc(format, func(m string) string {
		return ls.Get(legendVar.FindStringSubmatch(m)[1])
	})
}
