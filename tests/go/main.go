// ollamarender renders Ollama TEMPLATEs with Go's real text/template, filling them the way
// Ollama's server does for a chat (template.Execute with .Messages, after collating messages).
//
// stdin: JSON [{"template": "...", "messages": [{"role": "...", "content": "..."}], "tools": [...]}, ...]
// stdout: JSON [{"output": "..."} or {"error": "..."}, ...]
//
// Tools reach the template as Ollama's templateTool values (template/template.go): struct fields
// in their order, the top-level parameter properties a plain map (keys sorted when marshalled),
// nested properties in their order, empty fields left out as api.ToolProperty's omitempty does.
// "value" (tests only, not an Ollama variable) is any JSON value, decoded as Go decodes it into
// `any`, given to the template as .Value.
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

// toolCallFunction and toolCall mirror templateToolCallFunction and templateToolCall: no JSON
// tags, so a template's json writes the Go names, as Ollama's does (requests decode into them
// case-insensitively).
type toolCallFunction struct {
	Index     int
	Name      string
	Arguments args
}

type toolCall struct {
	ID       string
	Function toolCallFunction
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

// propertyType is api.PropertyType: a string or a list of strings, one string written as a string.
type propertyType []string

func (pt *propertyType) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err == nil {
		*pt = []string{s}
		return nil
	}
	var a []string
	if err := json.Unmarshal(data, &a); err != nil {
		return err
	}
	*pt = a
	return nil
}

func (pt propertyType) String() string {
	if len(pt) == 0 {
		return ""
	}
	if len(pt) == 1 {
		return pt[0]
	}
	return fmt.Sprintf("%v", []string(pt))
}

func (pt propertyType) MarshalJSON() ([]byte, error) {
	if len(pt) == 1 {
		return json.Marshal(pt[0])
	}
	return json.Marshal([]string(pt))
}

// orderedProperties is api.ToolPropertiesMap: properties in the order they came.
type orderedProperties struct {
	keys   []string
	values map[string]toolProperty
}

func (o *orderedProperties) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return err
	}
	o.values = map[string]toolProperty{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string)
		var p toolProperty
		if err := dec.Decode(&p); err != nil {
			return err
		}
		if _, seen := o.values[key]; !seen {
			o.keys = append(o.keys, key)
		}
		o.values[key] = p
	}
	return nil
}

// ToMap is api.ToolPropertiesMap's: the properties as a plain map, which a template ranges in
// sorted key order (Ollama 0.14 and later).
func (o *orderedProperties) ToMap() map[string]toolProperty {
	if o == nil {
		return nil
	}
	return o.values
}

func (o orderedProperties) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		value, err := json.Marshal(o.values[k])
		if err != nil {
			return nil, err
		}
		b.Write(key)
		b.WriteByte(':')
		b.Write(value)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// toolProperty mirrors api.ToolProperty.
type toolProperty struct {
	AnyOf       []toolProperty     `json:"anyOf,omitempty"`
	Type        propertyType       `json:"type,omitempty"`
	Items       any                `json:"items,omitempty"`
	Description string             `json:"description,omitempty"`
	Enum        []any              `json:"enum,omitempty"`
	Properties  *orderedProperties `json:"properties,omitempty"`
	Required    []string           `json:"required,omitempty"`
}

// templateProperties, templateTool and the rest mirror Ollama's template-side tool types.
type templateProperties map[string]toolProperty

func (t templateProperties) String() string {
	if t == nil {
		return "{}"
	}
	b, _ := json.Marshal(map[string]toolProperty(t))
	return string(b)
}

type templateToolFunctionParameters struct {
	Type       string             `json:"type"`
	Defs       any                `json:"$defs,omitempty"`
	Items      any                `json:"items,omitempty"`
	Required   []string           `json:"required,omitempty"`
	Properties templateProperties `json:"properties"`
}

type templateToolFunction struct {
	Name        string                         `json:"name"`
	Description string                         `json:"description"`
	Parameters  templateToolFunctionParameters `json:"parameters"`
}

type templateTool struct {
	Type     string               `json:"type"`
	Items    any                  `json:"items,omitempty"`
	Function templateToolFunction `json:"function"`
}

func (t templateTool) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

type templateTools []templateTool

func (t templateTools) String() string {
	b, _ := json.Marshal(t)
	return string(b)
}

// apiTool is what a client sends (api.Tool); converted to templateTool as Ollama converts it.
type apiTool struct {
	Type     string `json:"type"`
	Items    any    `json:"items"`
	Function struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Parameters  struct {
			Type       string            `json:"type"`
			Defs       any               `json:"$defs"`
			Items      any               `json:"items"`
			Required   []string          `json:"required"`
			Properties orderedProperties `json:"properties"`
		} `json:"parameters"`
	} `json:"function"`
}

func convertTools(tools []apiTool) templateTools {
	if tools == nil {
		return nil
	}
	out := make(templateTools, len(tools))
	for i, t := range tools {
		out[i] = templateTool{Type: t.Type, Items: t.Items, Function: templateToolFunction{
			Name: t.Function.Name, Description: t.Function.Description,
			Parameters: templateToolFunctionParameters{
				Type: t.Function.Parameters.Type, Defs: t.Function.Parameters.Defs, Items: t.Function.Parameters.Items,
				Required: t.Function.Parameters.Required, Properties: templateProperties(t.Function.Parameters.Properties.values),
			}}}
	}
	return out
}

type job struct {
	Template   string    `json:"template"`
	Messages   []message `json:"messages"`
	Tools      []apiTool `json:"tools"`
	Value      any       `json:"value"`
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
		"Tools":      convertTools(j.Tools),
		"Value":      j.Value,
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
