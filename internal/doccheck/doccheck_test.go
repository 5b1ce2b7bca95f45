package doccheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSlug(t *testing.T) {
	cases := []struct{ heading, want string }{
		{"Failure time and false reports", "failure-time-and-false-reports"},
		{"Faults, measured", "faults-measured"},
		{"Tests (`go test -race ./...`, seconds each)", "tests-go-test--race--seconds-each"},
		{"What an unauthenticated peer can and cannot do", "what-an-unauthenticated-peer-can-and-cannot-do"},
		{"[Linked](other.md) text", "linked-text"},
		{"Ünïcode café", "ünïcode-café"},
		{"snake_case name", "snake_case-name"},
		{"C++ & Go!", "c--go"},
		{"<code>tag</code> dropped", "tag-dropped"},
	}
	for _, c := range cases {
		if got := slug(c.heading); got != c.want {
			t.Errorf("slug(%q) = %q, want %q", c.heading, got, c.want)
		}
	}
}

func TestDropCode(t *testing.T) {
	cases := []struct{ line, want string }{
		{"a `b` c", "a  c"},
		{"a ``b ` c`` d", "a  d"},
		{"a `unclosed", "a `unclosed"},
		{"`x` and `y`", " and "},
	}
	for _, c := range cases {
		if got := dropCode(c.line); got != c.want {
			t.Errorf("dropCode(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}

// tree writes files (path → content) under a new directory and returns it.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, []byte(content), 0o644))
	}
	return dir
}

func TestCheck(t *testing.T) {
	const head = "# Title\n\n## Sub section\n\n## Sub section\n\n## Tests (`go test -race ./...`, seconds each)\n\n"
	cases := []struct {
		name, text string
		want       string // the reason of the one problem, or "" for none
	}{
		{"heading", "[x](#title)", ""},
		{"repeated heading", "[x](#sub-section-1)", ""},
		{"heading with code", "see [tests](#tests-go-test--race--seconds-each).", ""},
		{"file", "[x](docs/b.md)", ""},
		{"file and heading", "[x](docs/b.md#b-heading)", ""},
		{"back up", "[x](docs/../docs/b.md#b-heading)", ""},
		{"image", "![x](img.png)", ""},
		{"directory", "[x](docs/)", ""},
		{"escaped", "[x](docs/with%20space.md)", ""},
		{"title", `[x](docs/b.md "B")`, ""},
		{"angle brackets", "[x](<docs/b.md>)", ""},
		{"line anchor of a source file", "[x](c.go#L10)", ""},
		{"reference", "[ref]: docs/b.md", ""},
		{"html", `<a href="docs/b.md">b</a>`, ""},
		{"external", "[x](https://example.com/missing.md#nothing)", ""},
		{"mail", "<mailto:a@example.com>", ""},
		{"in a code span", "`[x](missing.md)`", ""},
		{"in a fence", "```md\n[x](missing.md)\n```", ""},
		{"in a long fence", "````\n```\n[x](missing.md)\n````", ""},

		{"missing file", "[x](missing.md)", "no such file or directory"},
		{"missing image", "![plot](bench/compare.png)", "no such file or directory"},
		{"missing heading", "[x](#nope)", "no heading with anchor #nope"},
		{"missing heading elsewhere", "[x](docs/b.md#nope)", "no heading with anchor #nope"},
		{"repeated once too often", "[x](#sub-section-2)", "no heading with anchor #sub-section-2"},
		{"anchor case", "[x](#Title)", "no heading with anchor #Title"},
		{"absolute", "[x](/docs/b.md)", "an absolute path"},
		{"missing reference", "[ref]: missing.md", "no such file or directory"},
		{"missing html", `<img src="missing.png">`, "no such file or directory"},
		{"after a fence", "```\n```\n[x](missing.md)", "no such file or directory"},
		{"after a code span", "`code` [x](missing.md)", "no such file or directory"},
		{"empty", "[x]()", "an empty link"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := tree(t, map[string]string{
				"a.md":               head + c.text + "\n",
				"docs/b.md":          "# B heading\n",
				"docs/with space.md": "# W\n",
				"img.png":            "png",
				"c.go":               "package c\n",
			})
			a := filepath.Join(dir, "a.md")
			problems, checked, err := Check(a)
			require.NoError(t, err)
			if c.want == "" {
				assert.Empty(t, problems, "%q", c.text)
				return
			}
			assert.Equal(t, 1, checked, "%q", c.text)
			require.Len(t, problems, 1, "%q", c.text)
			assert.Contains(t, problems[0].Reason, c.want, "%q", c.text)
			assert.Equal(t, a, problems[0].File)
			assert.Equal(t, strings.Count(head+c.text, "\n")+1, problems[0].Line, "%q: the line of the link", c.text)
		})
	}
}

func TestCheckMissingDocument(t *testing.T) {
	_, _, err := Check(filepath.Join(t.TempDir(), "none.md"))
	assert.Error(t, err)
}
