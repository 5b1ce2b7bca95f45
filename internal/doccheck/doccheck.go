// Package doccheck checks the links of Markdown documents: that every
// relative link names a file or directory that exists, and that every
// anchor (#…) of a link to a Markdown document names one of its headings,
// by GitHub's rule for heading anchors. Links with a scheme (https:,
// mailto:) are not followed.
//
// It reads inline links and images ([text](target), ![alt](target)),
// reference definitions ([label]: target) and HTML href and src
// attributes, outside fenced code blocks and code spans; and ATX headings
// (# Title). Anchors of other files (file.go#L10) are not checked.
package doccheck

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode"
)

// Problem is a link that does not resolve.
type Problem struct {
	File   string // the document, as given to Check
	Line   int    // 1-based
	Target string // as written
	Reason string
}

func (p Problem) String() string {
	return fmt.Sprintf("%s:%d: %s: %s", p.File, p.Line, p.Target, p.Reason)
}

// Check checks the links of the Markdown files given and returns those
// that do not resolve, in order, and how many links it checked. A
// relative target is resolved against the directory of the file it is in.
func Check(files ...string) (problems []Problem, checked int, err error) {
	anchors := make(map[string]map[string]bool) // by cleaned path
	anchorsOf := func(path string) (map[string]bool, error) {
		path = filepath.Clean(path)
		if a, ok := anchors[path]; ok {
			return a, nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		a := parse(string(b)).anchors
		anchors[path] = a
		return a, nil
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, 0, fmt.Errorf("doccheck: %w", err)
		}
		doc := parse(string(b))
		anchors[filepath.Clean(file)] = doc.anchors
		for _, l := range doc.links {
			if isExternal(l.target) {
				continue
			}
			checked++
			if reason := resolve(file, l.target, anchorsOf); reason != "" {
				problems = append(problems, Problem{File: file, Line: l.line, Target: l.target, Reason: reason})
			}
		}
	}
	return problems, checked, nil
}

// scheme matches a URL scheme (https:, mailto:) at the start of a target.
var scheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*:`)

// isExternal tells whether a link leaves the repository.
func isExternal(target string) bool {
	return scheme.MatchString(target) || strings.HasPrefix(target, "//")
}

// resolve returns why target, a link in file, does not resolve, or "".
func resolve(file, target string, anchorsOf func(string) (map[string]bool, error)) string {
	path, frag, _ := strings.Cut(target, "#")
	if strings.HasPrefix(path, "/") {
		return "an absolute path: write it relative to the document"
	}
	p, err := url.PathUnescape(path)
	if err != nil {
		return fmt.Sprintf("bad escape: %v", err)
	}
	dest := file
	if p != "" {
		dest = filepath.Join(filepath.Dir(file), filepath.FromSlash(p))
		if _, err := os.Stat(dest); err != nil {
			return "no such file or directory"
		}
	}
	if frag == "" || !strings.EqualFold(filepath.Ext(dest), ".md") {
		if path == "" && frag == "" {
			return "an empty link"
		}
		return ""
	}
	a, err := anchorsOf(dest)
	if err != nil {
		return fmt.Sprintf("cannot read it: %v", err)
	}
	if f, err := url.PathUnescape(frag); err == nil {
		frag = f
	}
	if !a[frag] {
		return fmt.Sprintf("no heading with anchor #%s", frag)
	}
	return ""
}

// document is what parse finds in a Markdown text.
type document struct {
	links   []link
	anchors map[string]bool
}

type link struct {
	target string
	line   int
}

var (
	fence      = regexp.MustCompile("^ {0,3}(```+|~~~+)")
	heading    = regexp.MustCompile(`^ {0,3}#{1,6}(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$`)
	inlineLink = regexp.MustCompile(`\]\([ \t]*(<[^>]*>|[^()\s]*)(?:[ \t]+"[^"]*")?[ \t]*\)`)
	refDef     = regexp.MustCompile(`^ {0,3}\[[^\]]+\]:[ \t]*(<[^>]*>|\S+)`)
	htmlAttr   = regexp.MustCompile(`\b(?:href|src)="([^"]*)"`)
)

// parse reads the links and heading anchors of a Markdown text.
func parse(text string) document {
	doc := document{anchors: make(map[string]bool)}
	seen := make(map[string]int) // slug → headings with it so far
	var inFence string
	for i, line := range strings.Split(text, "\n") {
		if m := fence.FindStringSubmatch(line); m != nil {
			switch {
			case inFence == "":
				inFence = m[1]
			case strings.HasPrefix(m[1], inFence[:1]) && len(m[1]) >= len(inFence):
				inFence = ""
			}
			continue
		}
		if inFence != "" {
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			s := slug(m[1])
			if n := seen[s]; n > 0 {
				doc.anchors[fmt.Sprintf("%s-%d", s, n)] = true
			} else {
				doc.anchors[s] = true
			}
			seen[s]++
		}
		line = dropCode(line)
		var targets []string
		for _, m := range inlineLink.FindAllStringSubmatch(line, -1) {
			targets = append(targets, m[1])
		}
		if m := refDef.FindStringSubmatch(line); m != nil {
			targets = append(targets, m[1])
		}
		for _, m := range htmlAttr.FindAllStringSubmatch(line, -1) {
			targets = append(targets, m[1])
		}
		for _, t := range targets {
			t = strings.TrimSuffix(strings.TrimPrefix(t, "<"), ">")
			doc.links = append(doc.links, link{target: t, line: i + 1})
		}
	}
	return doc
}

// dropCode removes the code spans of a line: a run of backticks, up to the
// next run of as many. A run with no match is left as it is.
func dropCode(line string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(line, '`')
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		b.WriteString(line[:i])
		n := len(line[i:]) - len(strings.TrimLeft(line[i:], "`"))
		rest := line[i+n:]
		end := -1
		for j := 0; j < len(rest); {
			k := strings.IndexByte(rest[j:], '`')
			if k < 0 {
				break
			}
			run := len(rest[j+k:]) - len(strings.TrimLeft(rest[j+k:], "`"))
			if run == n {
				end = j + k
				break
			}
			j += k + run
		}
		if end < 0 {
			b.WriteString(line[i : i+n])
			line = rest
			continue
		}
		line = rest[end+n:]
	}
}

var (
	mdLink  = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	htmlTag = regexp.MustCompile(`<[^>]+>`)
)

// slug is the anchor GitHub gives a heading: its text as rendered (link
// text for links, tags dropped), lower-cased, with every character but
// letters, marks, digits, connector punctuation (_), hyphens and spaces
// dropped, and spaces turned into hyphens. A repeated slug gets -1, -2, …
// appended, which parse does.
func slug(heading string) string {
	text := mdLink.ReplaceAllString(heading, "$1")
	text = htmlTag.ReplaceAllString(text, "")
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || unicode.In(r, unicode.L, unicode.M, unicode.Nd, unicode.Pc):
			b.WriteRune(r)
		}
	}
	return b.String()
}
