package push

import "strconv"

// PeerMessage is a one-to-one message whose receiver is offline.
type PeerMessage struct {
	Sender   int64
	Receiver int64
	Content  string // the message body, usually a JSON document
}

// GroupMessage is a group message for the offline members of a group.
type GroupMessage struct {
	Sender  int64
	GroupID int64
	Content string
}

// CustomerMessage is a customer service message between a customer and a
// seller of a store.
type CustomerMessage struct {
	CustomerAppID int64
	CustomerID    int64
	SellerID      int64
	StoreID       int64
	Content       string
}

// CustomerMessageV2 is a customer service message between users that may
// belong to different apps.
type CustomerMessageV2 struct {
	SenderAppID   int64
	Sender        int64
	ReceiverAppID int64
	Receiver      int64
	Content       string
}

// The payload types below are the JSON objects written to the queues. A
// push service written in Go can decode list entries into them. Their
// fields are declared in the order of their JSON keys, so json.Marshal of
// a payload value produces the same bytes as the library.

// PeerPayload is an entry of PeerQueue and its per-app variants.
type PeerPayload struct {
	AppID    int64  `json:"appid"`
	Content  string `json:"content"`
	Receiver int64  `json:"receiver"`
	Sender   int64  `json:"sender"`
}

// GroupPayload is an entry of GroupQueue and its per-app variants.
type GroupPayload struct {
	AppID     int64   `json:"appid"`
	Content   string  `json:"content"`
	GroupID   int64   `json:"group_id"`
	Receivers []int64 `json:"receivers"`
	Sender    int64   `json:"sender"`
}

// CustomerPayload is an entry of CustomerQueue.
type CustomerPayload struct {
	AppID         int64  `json:"appid"`
	Command       int    `json:"command"`
	Content       string `json:"content"`
	CustomerID    int64  `json:"customer"`
	CustomerAppID int64  `json:"customer_appid"`
	Receiver      int64  `json:"receiver"`
	SellerID      int64  `json:"seller"`
	StoreID       int64  `json:"store"`
}

// CustomerPayloadV2 is an entry of CustomerQueueV2 and its per-app
// variants.
type CustomerPayloadV2 struct {
	AppID         int64  `json:"appid"`
	Content       string `json:"content"`
	Receiver      int64  `json:"receiver"`
	ReceiverAppID int64  `json:"receiver_appid"`
	Sender        int64  `json:"sender"`
	SenderAppID   int64  `json:"sender_appid"`
}

// SystemPayload is an entry of SystemQueue.
type SystemPayload struct {
	AppID    int64  `json:"appid"`
	Content  string `json:"content"`
	Receiver int64  `json:"receiver"`
}

// Each encode method allocates one slice of room enough for its result:
// the keys and punctuation, the longest possible numbers, and the exact
// length of the escaped content.

func (pl *PeerPayload) encode() []byte {
	const frame = `{"appid":,"content":,"receiver":,"sender":}`
	contentLen, valid := jsonStringLen(pl.Content)
	buf := make([]byte, 0, len(frame)+3*maxIntLen+contentLen)

	buf = append(buf, `{"appid":`...)
	buf = strconv.AppendInt(buf, pl.AppID, 10)
	buf = append(buf, `,"content":`...)
	buf = appendJSONString(buf, pl.Content, contentLen, valid)
	buf = append(buf, `,"receiver":`...)
	buf = strconv.AppendInt(buf, pl.Receiver, 10)
	buf = append(buf, `,"sender":`...)
	buf = strconv.AppendInt(buf, pl.Sender, 10)
	return append(buf, '}')
}

func (pl *GroupPayload) encode() []byte {
	const frame = `{"appid":,"content":,"group_id":,"receivers":[],"sender":}`
	receivers := len(pl.Receivers) * (maxIntLen + len(","))
	contentLen, valid := jsonStringLen(pl.Content)
	buf := make([]byte, 0, len(frame)+3*maxIntLen+receivers+contentLen)

	buf = append(buf, `{"appid":`...)
	buf = strconv.AppendInt(buf, pl.AppID, 10)
	buf = append(buf, `,"content":`...)
	buf = appendJSONString(buf, pl.Content, contentLen, valid)
	buf = append(buf, `,"group_id":`...)
	buf = strconv.AppendInt(buf, pl.GroupID, 10)
	buf = append(buf, `,"receivers":`...)
	buf = appendJSONInts(buf, pl.Receivers)
	buf = append(buf, `,"sender":`...)
	buf = strconv.AppendInt(buf, pl.Sender, 10)
	return append(buf, '}')
}

func (pl *CustomerPayload) encode() []byte {
	const frame = `{"appid":,"command":,"content":,"customer":,"customer_appid":,"receiver":,"seller":,"store":}`
	contentLen, valid := jsonStringLen(pl.Content)
	buf := make([]byte, 0, len(frame)+7*maxIntLen+contentLen)

	buf = append(buf, `{"appid":`...)
	buf = strconv.AppendInt(buf, pl.AppID, 10)
	buf = append(buf, `,"command":`...)
	buf = strconv.AppendInt(buf, int64(pl.Command), 10)
	buf = append(buf, `,"content":`...)
	buf = appendJSONString(buf, pl.Content, contentLen, valid)
	buf = append(buf, `,"customer":`...)
	buf = strconv.AppendInt(buf, pl.CustomerID, 10)
	buf = append(buf, `,"customer_appid":`...)
	buf = strconv.AppendInt(buf, pl.CustomerAppID, 10)
	buf = append(buf, `,"receiver":`...)
	buf = strconv.AppendInt(buf, pl.Receiver, 10)
	buf = append(buf, `,"seller":`...)
	buf = strconv.AppendInt(buf, pl.SellerID, 10)
	buf = append(buf, `,"store":`...)
	buf = strconv.AppendInt(buf, pl.StoreID, 10)
	return append(buf, '}')
}

func (pl *CustomerPayloadV2) encode() []byte {
	const frame = `{"appid":,"content":,"receiver":,"receiver_appid":,"sender":,"sender_appid":}`
	contentLen, valid := jsonStringLen(pl.Content)
	buf := make([]byte, 0, len(frame)+5*maxIntLen+contentLen)

	buf = append(buf, `{"appid":`...)
	buf = strconv.AppendInt(buf, pl.AppID, 10)
	buf = append(buf, `,"content":`...)
	buf = appendJSONString(buf, pl.Content, contentLen, valid)
	buf = append(buf, `,"receiver":`...)
	buf = strconv.AppendInt(buf, pl.Receiver, 10)
	buf = append(buf, `,"receiver_appid":`...)
	buf = strconv.AppendInt(buf, pl.ReceiverAppID, 10)
	buf = append(buf, `,"sender":`...)
	buf = strconv.AppendInt(buf, pl.Sender, 10)
	buf = append(buf, `,"sender_appid":`...)
	buf = strconv.AppendInt(buf, pl.SenderAppID, 10)
	return append(buf, '}')
}

func (pl *SystemPayload) encode() []byte {
	const frame = `{"appid":,"content":,"receiver":}`
	contentLen, valid := jsonStringLen(pl.Content)
	buf := make([]byte, 0, len(frame)+2*maxIntLen+contentLen)

	buf = append(buf, `{"appid":`...)
	buf = strconv.AppendInt(buf, pl.AppID, 10)
	buf = append(buf, `,"content":`...)
	buf = appendJSONString(buf, pl.Content, contentLen, valid)
	buf = append(buf, `,"receiver":`...)
	buf = strconv.AppendInt(buf, pl.Receiver, 10)
	return append(buf, '}')
}
