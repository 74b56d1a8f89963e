// ollamarender renders Ollama TEMPLATEs with Go's real text/template, filling them the way
// Ollama's server does for a chat (template.Execute with .Messages, after collating messages).
//
// stdin: JSON [{"template": "...", "messages": [{"role": "...", "content": "..."}]}, ...]
// stdout: JSON [{"output": "..."} or {"error": "..."}, ...]
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/template"
	"text/template/parse"
	"time"
)

// args prints itself as JSON, as Ollama's templateArgs does.
type args map[string]any

func (a args) String() string {
	if a == nil {
		return "{}"
	}
	b, _ := json.Marshal(map[string]any(a))
	return string(b)
}

type toolCallFunction struct {
	Index     int
	Name      string `json:"name"`
	Arguments args   `json:"arguments"`
}

type toolCall struct {
	ID       string           `json:"id"`
	Function toolCallFunction `json:"function"`
}

// message mirrors the fields of Ollama's templateMessage (template/template.go).
type message struct {
	Role       string     `json:"role"`
	Content    string     `json:"content"`
	Thinking   string     `json:"thinking"`
	Images     []string
	ToolCalls  []toolCall `json:"tool_calls"`
	ToolName   string     `json:"tool_name"`
	ToolCallID string     `json:"tool_call_id"`
}

type job struct {
	Template   string    `json:"template"`
	Messages   []message `json:"messages"`
	Think      *bool     `json:"think"`
	ThinkLevel string    `json:"think_level"`
	Today      string    `json:"today"` // YYYY-MM-DD for currentDate (default: time.Now, as Ollama)
}

type result struct {
	Output *string `json:"output,omitempty"`
	Error  string  `json:"error,omitempty"`
}

var funcs = template.FuncMap{
	"json": func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	},
	"currentDate": func(args ...string) string {
		return time.Now().Format("2006-01-02")
	},
	"yesterdayDate": func(args ...string) string {
		return time.Now().AddDate(0, 0, -1).Format("2006-01-02")
	},
}

// identifiers lists the field and variable names a template uses (Ollama picks the
// .Messages code path only when "messages" is among them).
func identifiers(n parse.Node) []string {
	var names []string
	switch n := n.(type) {
	case *parse.ListNode:
		if n != nil {
			for _, c := range n.Nodes {
				names = append(names, identifiers(c)...)
			}
		}
	case *parse.ActionNode:
		names = identifiers(n.Pipe)
	case *parse.IfNode:
		names = branch(&n.BranchNode)
	case *parse.RangeNode:
		names = branch(&n.BranchNode)
	case *parse.WithNode:
		names = branch(&n.BranchNode)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			for _, a := range c.Args {
				names = append(names, identifiers(a)...)
			}
		}
	case *parse.FieldNode:
		names = n.Ident
	case *parse.VariableNode:
		names = n.Ident
	case *parse.ChainNode:
		names = append(identifiers(n.Node), n.Field...)
	}
	return names
}

func branch(n *parse.BranchNode) []string {
	names := identifiers(n.Pipe)
	names = append(names, identifiers(n.List)...)
	if n.ElseList != nil {
		names = append(names, identifiers(n.ElseList)...)
	}
	return names
}

// collate merges consecutive messages of one role and gathers the system prompt, as Ollama does.
func collate(msgs []message) (string, []*message) {
	var system []string
	var collated []*message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role && msgs[i].Role != "tool" {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func render(j job) (string, error) {
	tmpl := template.New("").Option("missingkey=zero").Funcs(funcs)
	if j.Today != "" {
		today, err := time.Parse("2006-01-02", j.Today)
		if err != nil {
			return "", err
		}
		tmpl = tmpl.Funcs(template.FuncMap{
			"currentDate":   func(args ...string) string { return today.Format("2006-01-02") },
			"yesterdayDate": func(args ...string) string { return today.AddDate(0, 0, -1).Format("2006-01-02") },
		})
	}
	tmpl, err := tmpl.Parse(j.Template)
	if err != nil {
		return "", err
	}
	usesMessages := false
	for _, name := range identifiers(tmpl.Tree.Root) {
		if strings.ToLower(name) == "messages" {
			usesMessages = true
		}
	}
	if !usesMessages {
		return "", fmt.Errorf("template does not use .Messages (Ollama would render it per prompt)")
	}
	system, messages := collate(j.Messages)
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]any{
		"System":     system,
		"Messages":   messages,
		"Tools":      nil,
		"Response":   "",
		"Think":      j.Think != nil && *j.Think,
		"ThinkLevel": j.ThinkLevel,
		"IsThinkSet": j.Think != nil,
	})
	return b.String(), err
}

func main() {
	var jobs []job
	if err := json.NewDecoder(os.Stdin).Decode(&jobs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	results := make([]result, len(jobs))
	for i, j := range jobs {
		out, err := render(j)
		if err != nil {
			results[i].Error = err.Error()
		} else {
			results[i].Output = &out
		}
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
