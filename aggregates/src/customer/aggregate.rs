use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};

use super::{CustomerCommand, CustomerError, CustomerEvent};
use crate::personal::{DataSubject, Personal};
use crate::values::{CustomerId, Email, PersonName, PhoneNumber, PostalAddress};

/// Lifecycle of a customer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerStatus {
    /// Not registered yet.
    #[default]
    Absent,
    /// Registered.
    Active,
    /// Erasure requested; no personal data is kept in this state.
    Forgotten,
}

/// A customer (aggregate id: the customer UUID). Its snapshot holds personal data only as
/// [`Personal`] values, and none once forgotten.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Customer {
    id: Option<CustomerId>,
    status: CustomerStatus,
    email: Option<Personal<Email>>,
    name: Option<Personal<PersonName>>,
    phone: Option<Personal<PhoneNumber>>,
    address: Option<Personal<PostalAddress>>,
}

impl Customer {
    /// Lifecycle status.
    pub fn status(&self) -> CustomerStatus {
        self.status
    }

    /// The customer id, once registered.
    pub fn id(&self) -> Option<CustomerId> {
        self.id
    }

    /// Email, unless forgotten.
    pub fn email(&self) -> Option<&Personal<Email>> {
        self.email.as_ref()
    }

    /// Name, unless forgotten.
    pub fn name(&self) -> Option<&Personal<PersonName>> {
        self.name.as_ref()
    }

    /// Default shipping address, if set and not forgotten.
    pub fn address(&self) -> Option<&Personal<PostalAddress>> {
        self.address.as_ref()
    }

    /// The phone number, if one is on file.
    pub fn phone(&self) -> Option<&Personal<PhoneNumber>> {
        self.phone.as_ref()
    }

    fn decide(&self, command: CustomerCommand) -> Result<Vec<CustomerEvent>, CustomerError> {
        if let CustomerCommand::RegisterCustomer {
            customer_id,
            email,
            name,
        } = command
        {
            if self.status != CustomerStatus::Absent {
                return Err(CustomerError::AlreadyExists);
            }
            let subject = DataSubject::Customer(customer_id);
            return Ok(vec![CustomerEvent::CustomerRegistered {
                customer_id,
                email: Personal::new(subject, email),
                name: Personal::new(subject, name),
            }]);
        }
        let id = match (self.status, self.id) {
            (CustomerStatus::Active, Some(id)) => id,
            (CustomerStatus::Forgotten, _) => return Err(CustomerError::Forgotten),
            _ => return Err(CustomerError::NotFound),
        };
        let subject = DataSubject::Customer(id);
        let event = match command {
            CustomerCommand::RegisterCustomer { .. } => return Err(CustomerError::AlreadyExists),
            CustomerCommand::ChangeCustomerProfile { name, email, phone } => {
                let unchanged = self.name.as_ref().and_then(Personal::expose) == Some(&name)
                    && self.email.as_ref().and_then(Personal::expose) == Some(&email)
                    && self.phone.as_ref().and_then(Personal::expose) == phone.as_ref();
                if unchanged {
                    return Ok(vec![]);
                }
                CustomerEvent::CustomerProfileChanged {
                    name: Personal::new(subject, name),
                    email: Personal::new(subject, email),
                    phone: phone.map(|p| Personal::new(subject, p)),
                }
            }
            CustomerCommand::ChangeCustomerAddress { address } => {
                if self.address.as_ref().and_then(Personal::expose) == Some(&address) {
                    return Ok(vec![]);
                }
                CustomerEvent::CustomerAddressChanged {
                    address: Personal::new(subject, address),
                }
            }
            CustomerCommand::ForgetCustomer { requested_at } => CustomerEvent::CustomerForgotten {
                customer_id: id,
                requested_at,
            },
        };
        Ok(vec![event])
    }
}

impl Aggregate for Customer {
    const TYPE: &'static str = "Customer";
    type Command = CustomerCommand;
    type Event = CustomerEvent;
    type Error = CustomerError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CustomerEvent::CustomerRegistered {
                customer_id,
                email,
                name,
                ..
            } => {
                self.id = Some(customer_id);
                self.email = Some(email);
                self.name = Some(name);
                self.status = CustomerStatus::Active;
            }
            CustomerEvent::CustomerProfileChanged { name, email, phone } => {
                self.name = Some(name);
                self.email = Some(email);
                self.phone = phone;
            }
            CustomerEvent::CustomerAddressChanged { address } => self.address = Some(address),
            CustomerEvent::CustomerForgotten { .. } => {
                self.email = None;
                self.name = None;
                self.phone = None;
                self.address = None;
                self.status = CustomerStatus::Forgotten;
            }
        }
    }
}
