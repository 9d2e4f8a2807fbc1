// Renders an Ollama TEMPLATE with Go's text/template, as the Ollama server does, for the tests.
//
// Reads {"template", "system", "messages", "tools"} as JSON on stdin and writes the prompt to stdout. The data
// mirrors what Ollama hands a template: .System, .Messages (system messages included), .Tools, with tool
// functions and call arguments printing as JSON (Ollama's types have String methods that marshal them).
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"text/template"
)

type JSONValue struct{ raw json.RawMessage }

func (v JSONValue) String() string { return string(v.raw) }

func (v *JSONValue) UnmarshalJSON(data []byte) error {
	v.raw = append(json.RawMessage{}, data...)
	return nil
}

type Function struct {
	Name      string    `json:"name"`
	Arguments JSONValue `json:"arguments"`
}

type ToolCall struct {
	Function Function `json:"function"`
}

type Message struct {
	Role      string     `json:"role"`
	Content   string     `json:"content"`
	Thinking  string     `json:"thinking"`
	ToolCalls []ToolCall `json:"tool_calls"`
}

type Tool struct {
	Type     string    `json:"type"`
	Function JSONValue `json:"function"`
}

type Input struct {
	Template   string    `json:"template"`
	System     string    `json:"system"`
	Messages   []Message `json:"messages"`
	Tools      []Tool    `json:"tools"`
	Think      bool      `json:"think"`
	IsThinkSet bool      `json:"is_think_set"`
}

func main() {
	var input Input
	if err := json.NewDecoder(os.Stdin).Decode(&input); err != nil {
		fmt.Fprintln(os.Stderr, "bad input:", err)
		os.Exit(2)
	}
	parsed, err := template.New("prompt").Parse(input.Template)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad template:", err)
		os.Exit(3)
	}
	data := map[string]any{"System": input.System, "Messages": input.Messages, "Tools": input.Tools,
		"Think": input.Think, "IsThinkSet": input.IsThinkSet, "Prompt": "", "Response": ""}
	if err := parsed.Execute(os.Stdout, data); err != nil {
		fmt.Fprintln(os.Stderr, "render failed:", err)
		os.Exit(4)
	}
}
