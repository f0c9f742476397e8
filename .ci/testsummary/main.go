// Command testsummary reads `go test -json` on stdin, prints the usual
// per-package result lines and every failing test's output, lists the
// tests that were skipped and why, and ends with one line
// "N passed, N failed, N skipped". It exits 1 when a test failed or when a
// test skipped because a service variable (AUTHD_TEST_*) was missing: in
// CI the PostgreSQL and Redis suites must run, never skip.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

type event struct {
	Action  string
	Package string
	Test    string
	Output  string
}

func main() {
	var (
		passed, failed, skipped int
		missingService          bool
		output                  = map[string][]string{} // test key → its output lines
		skips                   []string
	)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Println(sc.Text()) // build errors and the like
			continue
		}
		key := e.Package + " " + e.Test
		switch e.Action {
		case "output":
			if e.Test == "" {
				if strings.HasPrefix(e.Output, "ok ") || strings.HasPrefix(e.Output, "FAIL") || strings.HasPrefix(e.Output, "?") || strings.HasPrefix(e.Output, "panic") {
					fmt.Print(e.Output)
				}
				continue
			}
			output[key] = append(output[key], e.Output)
		case "pass":
			if e.Test != "" {
				passed++
			}
			delete(output, key)
		case "fail":
			if e.Test != "" {
				failed++
				fmt.Printf("--- FAIL: %s (%s)\n%s", e.Test, e.Package, strings.Join(output[key], ""))
			}
			delete(output, key)
		case "skip":
			if e.Test != "" {
				skipped++
				why := strings.TrimSpace(lastLine(output[key]))
				if strings.Contains(why, "AUTHD_TEST_") {
					missingService = true
				}
				skips = append(skips, fmt.Sprintf("%s %s: %s", e.Package, e.Test, why))
			}
			delete(output, key)
		}
	}
	sort.Strings(skips)
	for _, s := range skips {
		fmt.Println("skipped:", s)
	}
	fmt.Printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped)
	if missingService {
		fmt.Println("FAIL: a suite skipped for want of PostgreSQL or Redis: CI must run it")
	}
	if failed > 0 || missingService {
		os.Exit(1)
	}
}

func lastLine(lines []string) string {
	for i := len(lines) - 1; i >= 0; i-- {
		l := strings.TrimSpace(lines[i])
		if l != "" && !strings.HasPrefix(l, "---") && !strings.HasPrefix(l, "===") {
			return l
		}
	}
	return ""
}
